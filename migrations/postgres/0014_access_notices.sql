-- Servers keep the API tokens they have looked up until what a token may do changes.
-- Whatever changes a token (but its last use), a user or a security group, through the
-- ledger of any server or by hand, tells every listening server when it commits.
CREATE FUNCTION keeptrack_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keeptrack_access', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_access
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF user_id, token_hash, revoked_at
    ON api_tokens FOR EACH STATEMENT EXECUTE FUNCTION keeptrack_access_changed();
CREATE TRIGGER users_access AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION keeptrack_access_changed();
CREATE TRIGGER security_groups_access
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON security_groups
    FOR EACH STATEMENT EXECUTE FUNCTION keeptrack_access_changed();
