//! Signed checkpoints: the C2SP `tlog-checkpoint` body (origin, size, base64 root)
//! signed as a C2SP signed note with Ed25519, so that any sumdb/Tessera tool can check
//! them. Keys live in files outside the database.

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::domain::{digest::hex, merkle::Hash};

/// The Ed25519 signature type of C2SP signed notes.
const ALG_ED25519: u8 = 0x01;
/// A note larger than this is not a checkpoint.
const MAX_NOTE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a checkpoint: {0}")]
    Malformed(&'static str),
    #[error("no signature by a trusted key")]
    Unsigned,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("not a key: {0}")]
    BadKey(&'static str),
}

/// What a checkpoint says: this log had this many entries with this root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', ' ', '\n']) && name.chars().all(|c| !c.is_control())
}

/// The log's signing key. Its name is the log's origin.
pub struct Signer {
    name: String,
    key: SigningKey,
}

impl Signer {
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::BadKey(
                "a key name has no spaces, plus signs or newlines",
            ));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| CheckpointError::BadKey("no randomness"))?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Go's note format for a private key: `PRIVATE+KEY+name+keyid+base64(alg||seed)`.
    pub fn to_skey(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let mut raw = vec![ALG_ED25519];
        raw.extend(self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&key_id(&self.name, &public)),
            B64.encode(raw)
        )
    }

    pub fn from_skey(text: &str) -> Result<Self, CheckpointError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(CheckpointError::BadKey("no PRIVATE+KEY+ prefix"))?;
        // The key is base64, which may itself contain '+': split off the first two only.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(_id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::BadKey("expected name+keyid+key"));
        };
        let raw = B64
            .decode(b64)
            .map_err(|_| CheckpointError::BadKey("the key is not base64"))?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, seed)) => seed
                .try_into()
                .map_err(|_| CheckpointError::BadKey("wrong key length"))?,
            _ => return Err(CheckpointError::BadKey("not an Ed25519 key")),
        };
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signed note: body, a blank line, and `— name base64(keyid||signature)`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes()).to_bytes();
        let mut raw = key_id(&self.name, &self.key.verifying_key().to_bytes()).to_vec();
        raw.extend(signature);
        format!("{body}\n— {} {}\n", self.name, B64.encode(raw))
    }
}

/// A trusted public key, as handed to auditors: `name+keyid+base64(alg||key)`.
#[derive(Clone, Debug)]
pub struct Verifier {
    name: String,
    key: VerifyingKey,
}

impl Verifier {
    pub fn to_vkey(&self) -> String {
        let public = self.key.to_bytes();
        let mut raw = vec![ALG_ED25519];
        raw.extend(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex(&key_id(&self.name, &public)),
            B64.encode(raw)
        )
    }

    pub fn from_vkey(text: &str) -> Result<Self, CheckpointError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::BadKey("expected name+keyid+key"));
        };
        let raw = B64
            .decode(b64)
            .map_err(|_| CheckpointError::BadKey("the key is not base64"))?;
        let public: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, k)) => k
                .try_into()
                .map_err(|_| CheckpointError::BadKey("wrong key length"))?,
            _ => return Err(CheckpointError::BadKey("not an Ed25519 key")),
        };
        if !valid_name(name) || hex(&key_id(name, &public)) != id {
            return Err(CheckpointError::BadKey("the key id does not match the key"));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| CheckpointError::BadKey("not a valid Ed25519 point"))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses a signed note and returns its checkpoint if this key signed it. Takes any
    /// bytes without panicking.
    pub fn open(&self, note: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if note.len() > MAX_NOTE {
            return Err(CheckpointError::Malformed("too large"));
        }
        let text =
            std::str::from_utf8(note).map_err(|_| CheckpointError::Malformed("not UTF-8"))?;
        let split = text.find("\n\n").ok_or(CheckpointError::Malformed(
            "no blank line before the signatures",
        ))?;
        let (body, signatures) = (&text[..=split], &text[split + 2..]);
        let id = key_id(&self.name, &self.key.to_bytes());
        let mut signed = false;
        for line in signatures.lines() {
            let rest = line.strip_prefix("— ").ok_or(CheckpointError::Malformed(
                "a signature line must start with an em dash",
            ))?;
            let (name, b64) = rest.split_once(' ').ok_or(CheckpointError::Malformed(
                "a signature line needs a name and a signature",
            ))?;
            if name != self.name {
                continue;
            }
            let raw = B64
                .decode(b64)
                .map_err(|_| CheckpointError::Malformed("a signature is not base64"))?;
            if raw.len() != 68 || raw[..4] != id {
                continue;
            }
            let sig = Signature::from_bytes(
                raw[4..]
                    .try_into()
                    .map_err(|_| CheckpointError::BadSignature)?,
            );
            self.key
                .verify_strict(body.as_bytes(), &sig)
                .map_err(|_| CheckpointError::BadSignature)?;
            signed = true;
        }
        if !signed {
            return Err(CheckpointError::Unsigned);
        }
        parse_body(body)
    }
}

fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(CheckpointError::Malformed(
            "a checkpoint has origin, size and root lines",
        ));
    };
    if origin.is_empty() {
        return Err(CheckpointError::Malformed("empty origin"));
    }
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err(CheckpointError::Malformed(
            "the size is not a decimal number",
        ));
    }
    let size = size
        .parse()
        .map_err(|_| CheckpointError::Malformed("the size is too large"))?;
    let root: Hash = B64
        .decode(root)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or(CheckpointError::Malformed(
            "the root is not 32 base64 bytes",
        ))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

/// Creates the key pair files: the private key (mode 0600) and `<path>.pub` beside it.
/// Refuses to overwrite an existing key.
pub fn create_key_files(path: &Path, name: &str) -> std::io::Result<Signer> {
    use std::io::Write;
    let signer = Signer::generate(name).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{}", signer.to_skey())?;
    file.sync_all()?;
    std::fs::write(
        public_key_path(path),
        format!("{}\n", signer.verifier().to_vkey()),
    )?;
    Ok(signer)
}

pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

pub fn read_signer(path: &Path) -> std::io::Result<Signer> {
    let text = std::fs::read_to_string(path)?;
    Signer::from_skey(&text).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Byte edits for mutation tests: (where, byte, how), how being replace, insert,
    /// delete or cut. Mutating valid input reaches the checks deep inside a parser,
    /// which random bytes almost never get past the first line of.
    pub(crate) fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..4)
    }

    pub(crate) fn mutate(valid: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        for &(at, byte, how) in edits {
            let i = at % (bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => bytes.truncate(i),
            }
        }
        bytes
    }

    fn test_signer() -> Signer {
        Signer::from_skey("PRIVATE+KEY+log+00000000+AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH")
            .unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "keeptrack.0123/audit".into(),
            size: 42,
            root: [7; 32],
        }
    }

    #[test]
    fn signs_and_opens() {
        let signer = Signer::generate("keeptrack.0123/audit").unwrap();
        let note = signer.sign(&checkpoint());
        assert!(note.starts_with("keeptrack.0123/audit\n42\nBwcH"));
        let v = Verifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
        assert_eq!(v.open(note.as_bytes()).unwrap(), checkpoint());
        let other = Signer::generate("keeptrack.0123/audit").unwrap().verifier();
        assert_eq!(other.open(note.as_bytes()), Err(CheckpointError::Unsigned));
        let again = Signer::from_skey(&signer.to_skey()).unwrap();
        assert_eq!(again.sign(&checkpoint()), note);
    }

    #[test]
    fn any_change_to_a_signed_note_fails() {
        let signer = Signer::generate("log").unwrap();
        let note = signer.sign(&checkpoint()).into_bytes();
        let v = signer.verifier();
        let body_len = checkpoint().body().len();
        for i in 0..body_len {
            let mut bad = note.clone();
            bad[i] ^= 1;
            assert!(v.open(&bad).is_err(), "flipping byte {i} passed");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let v = test_signer().verifier();
            let _ = v.open(&bytes);
            let _ = Verifier::from_vkey(&String::from_utf8_lossy(&bytes));
            let _ = Signer::from_skey(&String::from_utf8_lossy(&bytes));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        /// A signed note with a few bytes changed never panics the parser, and is only
        /// accepted if what it says is still what was signed.
        #[test]
        fn mutated_notes_never_panic_or_pass_altered(edits in edits()) {
            static SIGNED: std::sync::LazyLock<(Verifier, String)> = std::sync::LazyLock::new(|| {
                let signer = test_signer();
                (signer.verifier(), signer.sign(&checkpoint()))
            });
            let (verifier, note) = &*SIGNED;
            if let Ok(c) = verifier.open(&mutate(note.as_bytes(), &edits)) {
                prop_assert_eq!(c, checkpoint());
            }
            let vkey = verifier.to_vkey();
            let _ = Verifier::from_vkey(&String::from_utf8_lossy(&mutate(vkey.as_bytes(), &edits)));
        }
    }
}
