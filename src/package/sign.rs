//! ed25519 signatures over `manifest.json`.
//!
//! The manifest lists the sha256 of every other file, so signing its exact bytes signs the
//! whole archive. Keys are stored as hex text: the secret key file holds the 32-byte seed
//! (`edgepack-ed25519-secret <hex>`), the public key file `KEY.pub` the 32-byte key
//! (`edgepack-ed25519-public <hex>`). The signature file `manifest.sig` is JSON
//! naming the algorithm, the public key and the signature.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::artifact;
use crate::error::{Error, Result};

const SECRET_TAG: &str = "edgepack-ed25519-secret";
const PUBLIC_TAG: &str = "edgepack-ed25519-public";

/// The content of `manifest.sig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub algorithm: String,
    /// Hex public key (32 bytes).
    pub public_key: String,
    /// Hex signature (64 bytes) over the bytes of manifest.json.
    pub signature: String,
}

/// Generate a key pair from the OS random source; write `path` (mode 0600) and `path.pub`.
pub fn keygen(path: &Path) -> Result<(PathBuf, String)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Error::file(path, format!("no OS randomness for a key: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let public = hex::encode(key.verifying_key().to_bytes());
    let pub_path = public_key_path(path);
    if path.exists() {
        return Err(Error::file(path, "exists; refusing to overwrite a key"));
    }
    artifact::write_atomic_with(path, |f| {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(f, "{SECRET_TAG} {}", hex::encode(seed))
    })?;
    artifact::write_atomic(&pub_path, format!("{PUBLIC_TAG} {public}\n").as_bytes())?;
    Ok((pub_path, public))
}

/// `KEY` -> `KEY.pub`.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

fn read_tagged(path: &Path, tag: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut parts = text.split_whitespace();
    if parts.next() != Some(tag) {
        return Err(Error::file(
            path,
            format!("not an edgepack key (expected '{tag} <hex>')"),
        ));
    }
    let hexs = parts
        .next()
        .ok_or_else(|| Error::file(path, "key file has no key"))?;
    let bytes = hex::decode(hexs).map_err(|_| Error::file(path, "key is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| Error::file(path, "key is not 32 bytes"))
}

/// Read a secret key written by [`keygen`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_tagged(path, SECRET_TAG)?))
}

/// Read a public key written by [`keygen`] (a secret key file is accepted too).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if text.starts_with(SECRET_TAG) {
        return Ok(load_signing_key(path)?.verifying_key());
    }
    VerifyingKey::from_bytes(&read_tagged(path, PUBLIC_TAG)?)
        .map_err(|_| Error::file(path, "not a valid ed25519 public key"))
}

/// Sign the manifest bytes.
pub fn sign(key: &SigningKey, manifest: &[u8]) -> SignatureFile {
    SignatureFile {
        algorithm: "ed25519".into(),
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(key.sign(manifest).to_bytes()),
    }
}

impl SignatureFile {
    /// Canonical bytes (pretty JSON + newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("signature serializes");
        v.push(b'\n');
        v
    }

    /// Check the signature over `manifest`; with `pinned`, the signer must be that key.
    /// Returns the signer's key fingerprint, or why the check failed (a problem `verify`
    /// reports, not an error: the archive was read fine).
    pub fn verify(
        &self,
        manifest: &[u8],
        pinned: Option<&VerifyingKey>,
    ) -> std::result::Result<String, SignatureProblem> {
        if self.algorithm != "ed25519" {
            return Err(SignatureProblem::Algorithm(self.algorithm.clone()));
        }
        let pk: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureProblem::KeyEncoding)?;
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| SignatureProblem::KeyInvalid)?;
        if let Some(p) = pinned {
            if p.to_bytes() != key.to_bytes() {
                return Err(SignatureProblem::OtherSigner {
                    signer: fingerprint(&key),
                    expected: fingerprint(p),
                });
            }
        }
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureProblem::SignatureEncoding)?;
        key.verify(manifest, &Signature::from_bytes(&sig))
            .map_err(|_| SignatureProblem::Mismatch)?;
        Ok(fingerprint(&key))
    }
}

/// Why a signature does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureProblem {
    #[error("unsupported signature algorithm '{0}'")]
    Algorithm(String),
    #[error("signature's public key is not 32 hex bytes")]
    KeyEncoding,
    #[error("signature's public key is invalid")]
    KeyInvalid,
    /// Signed, but not by the pinned key (fingerprints).
    #[error("signed by key {signer} but the expected key is {expected}")]
    OtherSigner { signer: String, expected: String },
    #[error("signature is not 64 hex bytes")]
    SignatureEncoding,
    #[error("signature does not match manifest.json (changed or forged)")]
    Mismatch,
}

/// A short, printable key identifier: the first 16 hex digits of the key.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(&key.to_bytes()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_sign_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("key");
        let (pubp, _) = keygen(&k).unwrap();
        let sk = load_signing_key(&k).unwrap();
        let pk = load_verifying_key(&pubp).unwrap();
        let s = sign(&sk, b"manifest");
        assert!(s.verify(b"manifest", Some(&pk)).is_ok());
        assert_eq!(
            s.verify(b"manifesT", Some(&pk)),
            Err(SignatureProblem::Mismatch)
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn rejects_signature_by_another_key_when_pinned() {
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("a")).unwrap();
        let (b_pub, _) = keygen(&dir.path().join("b")).unwrap();
        let a = load_signing_key(&dir.path().join("a")).unwrap();
        let s = sign(&a, b"m");
        let b = load_verifying_key(&b_pub).unwrap();
        assert!(s
            .verify(b"m", Some(&b))
            .unwrap_err()
            .to_string()
            .contains("expected key"));
        assert!(s.verify(b"m", None).is_ok());
    }

    #[test]
    fn refuses_to_overwrite_a_key_and_rejects_garbage_keys() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("key");
        keygen(&k).unwrap();
        assert!(keygen(&k).unwrap_err().to_string().contains("refusing"));
        let g = dir.path().join("g");
        std::fs::write(&g, "hello").unwrap();
        assert!(load_signing_key(&g).is_err());
        assert!(load_verifying_key(&g).is_err());
    }
}
