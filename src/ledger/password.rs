//! Password hashing (Argon2id), done before a command reaches the single writer so a
//! slow hash never holds up everyone else's writes.

use argon2::{Argon2, password_hash::PasswordHasher, password_hash::PasswordVerifier};

use crate::domain::{field::FieldError, user::check_password};

/// Checks the password rules and hashes it, off the async threads.
pub async fn hash(password: &str) -> Result<String, FieldError> {
    check_password(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| FieldError::new("password", "could not be hashed"))
    })
    .await
    .map_err(|_| FieldError::new("password", "could not be hashed"))?
}

/// Whether `password` matches the stored hash.
pub async fn verify(password: &str, stored_hash: &str) -> bool {
    let (password, stored_hash) = (password.to_owned(), stored_hash.to_owned());
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), stored_hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A random password for a new account, shown once.
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
