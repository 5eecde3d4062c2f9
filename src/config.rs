//! Settings shared by every command: where the database is.

/// The database used when none is named: `keeptrack.db` in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://keeptrack.db";

/// Hides a PostgreSQL password when a URL is shown to a person.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            super::redact_url("postgres://kt:secret@localhost:5432/kt"),
            "postgres://kt:***@localhost:5432/kt"
        );
        assert_eq!(
            super::redact_url("sqlite://keeptrack.db"),
            "sqlite://keeptrack.db"
        );
    }
}
