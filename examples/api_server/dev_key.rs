//! The development RSA key pair that signs development tokens: generated once, kept in a
//! file beside the server's data and reused. Shared by the example servers (`api_server`'s
//! `dev.rs`, and `mcp_server.rs` through `#[path]`).

use std::path::Path;

use serde_json::Value;
use tokengate::jwt::{Algorithm, KeySet, jwks_from_pem};

/// The `kid` of the development key.
pub(crate) const DEV_KID: &str = "tokengate-dev";

/// The development RSA key pair.
pub(crate) struct DevKey {
    pub(crate) private_pem: String,
    pub(crate) public_pem: String,
}

impl DevKey {
    /// The key in `path`, generated (and written, readable by the owner only) when absent.
    pub(crate) fn load_or_create(path: &Path) -> Result<DevKey, String> {
        let private_pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = generate_pem()?;
                write_private_file(path, &pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                pem
            }
            Err(e) => return Err(format!("cannot read the development key {}: {e}", path.display())),
        };
        let public_pem = public_pem_of(&private_pem).map_err(|e| {
            format!(
                "{} is not a usable RSA key: {e}; delete it to generate a new one",
                path.display()
            )
        })?;
        Ok(DevKey {
            private_pem,
            public_pem,
        })
    }

    /// The public key as a key set for a `JwtVerifier`.
    pub(crate) fn key_set(&self) -> Result<KeySet, String> {
        let jwks = jwks_from_pem(&self.public_pem, Some(DEV_KID), Algorithm::RS256).map_err(|e| e.to_string())?;
        KeySet::from_jwks(&jwks.to_string()).map_err(|e| e.to_string())
    }

    /// A JWT of type `typ` with `claims`, signed RS256 under [`DEV_KID`].
    pub(crate) fn sign(&self, typ: &str, claims: &Value) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(DEV_KID.to_owned());
        header.typ = Some(typ.to_owned());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).map_err(|e| e.to_string())?;
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| e.to_string())
    }
}

fn generate_pem() -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "could not generate the development RSA key".to_owned())?;
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair
        .as_der()
        .map_err(|_| "could not encode the development key".to_owned())?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())))
}

fn public_pem_of(private_pem: &str) -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let parsed = pem::parse(private_pem).map_err(|e| e.to_string())?;
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(parsed.contents()).map_err(|e| e.to_string())?;
    let public: aws_lc_rs::encoding::PublicKeyX509Der<'_> = pair.public_key().as_der().map_err(|e| e.to_string())?;
    Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", public.as_ref().to_vec())))
}

pub(crate) fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}
