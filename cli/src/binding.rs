//! `tokengate dpop …` and `tokengate mtls …`: the client's side of sender-constrained tokens,
//! for trying a DPoP or certificate-bound route by hand.
//!
//! ```text
//! tokengate dpop key --out client-dpop.pem          # a new ES256 key; prints its jkt
//! tokengate dpop proof --key client-dpop.pem --method POST \
//!     --url https://api.example.com/api/transfers --token "$TOKEN"   # one proof, for one request
//! tokengate mtls thumbprint --cert client.pem       # the cnf."x5t#S256" of a certificate
//! ```

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tokengate_runtime::binding::ClientCertificate;
use tokengate_runtime::binding::proof::DpopKey;

#[derive(Subcommand)]
pub(crate) enum DpopCommand {
    /// Generate an ES256 key for DPoP (PKCS#8 PEM, mode 0600) and print its thumbprint (`jkt`).
    Key(KeyArgs),
    /// Print a DPoP proof for one request: the value of its `DPoP` header (valid once, for
    /// about a minute).
    Proof(ProofArgs),
    /// Print the thumbprint (`jkt`) of a DPoP key: what a token bound to it carries in `cnf.jkt`.
    Thumbprint(ThumbprintArgs),
}

#[derive(Args)]
pub(crate) struct KeyArgs {
    /// Where to write the private key (refused if the file exists).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

#[derive(Args)]
pub(crate) struct ProofArgs {
    /// The DPoP private key (PKCS#8 PEM, P-256), e.g. from `tokengate dpop key`.
    #[arg(long, value_name = "PATH")]
    key: PathBuf,
    /// The request's method (`htm`).
    #[arg(long, default_value = "POST")]
    method: String,
    /// The request's URL as the server's public URL names it (`htu`; a query and a fragment
    /// are left out of the proof, as RFC 9449 says).
    #[arg(long, value_name = "URL")]
    url: String,
    /// The access token the request presents (the proof carries its hash, `ath`).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// The server's nonce (its last `DPoP-Nonce` header), when it requires one.
    #[arg(long)]
    nonce: Option<String>,
}

#[derive(Args)]
pub(crate) struct ThumbprintArgs {
    /// The DPoP private key (PKCS#8 PEM).
    #[arg(long, value_name = "PATH")]
    key: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum MtlsCommand {
    /// Print the SHA-256 thumbprint of a certificate (PEM): what a token bound to it carries
    /// in `cnf."x5t#S256"`.
    Thumbprint(CertArgs),
}

#[derive(Args)]
pub(crate) struct CertArgs {
    /// The client certificate (PEM; the first `CERTIFICATE` block is used).
    #[arg(long, value_name = "PATH")]
    cert: PathBuf,
}

fn read(path: &PathBuf, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

/// The hint for a key that cannot be used: where a new one comes from, and how to convert a
/// P-256 key that is only in the wrong PEM form.
const MAKE_A_KEY: &str = "make a new one with `tokengate dpop key --out dpop.pem` (a path that does not exist yet), or \
     convert an EC P-256 key in SEC1 form (`BEGIN EC PRIVATE KEY`) with \
     `openssl pkcs8 -topk8 -nocrypt -in key.pem -out dpop.pem`";

fn load_key(path: &PathBuf) -> Result<DpopKey, String> {
    let pem = read(path, "DPoP key").map_err(|e| format!("{e}; {MAKE_A_KEY}"))?;
    DpopKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e}; {MAKE_A_KEY}", path.display()))
}

/// `dpop proof`'s flags checked: a method that is an HTTP token, an absolute `http(s)` URL, and
/// a token or nonce that is not empty when given.
fn check_proof_args(args: &ProofArgs) -> Result<(), String> {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if args.method.is_empty() || !args.method.chars().all(is_token_char) {
        return Err(format!(
            "--method {:?} is not an HTTP method; give the request's, e.g. GET, POST or DELETE",
            args.method
        ));
    }
    if !args.url.starts_with("https://") && !args.url.starts_with("http://") {
        return Err(format!(
            "--url {:?} must be the absolute URL of the request, e.g. https://api.example.com/api/transfers",
            args.url
        ));
    }
    if args.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err("--token is empty; give the access token the request presents (its hash goes into the proof's `ath`), or leave --token out".into());
    }
    if args.nonce.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err("--nonce is empty; give the server's last `DPoP-Nonce` header, or leave --nonce out".into());
    }
    Ok(())
}

pub(crate) fn dpop(command: DpopCommand) -> Result<(), String> {
    match command {
        DpopCommand::Key(args) => {
            let key = DpopKey::generate().map_err(|e| e.to_string())?;
            write_private(&args.out, &key.to_pkcs8_pem()).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "{} exists already; a private key is never written over another file: choose another --out",
                    args.out.display()
                ),
                _ => format!("cannot write {}: {e}", args.out.display()),
            })?;
            println!("{}", key.thumbprint());
        }
        DpopCommand::Proof(args) => {
            check_proof_args(&args)?;
            let method = args.method.to_ascii_uppercase();
            let key = load_key(&args.key)?;
            let proof = key
                .proof(&method, &args.url, args.token.as_deref(), args.nonce.as_deref())
                .map_err(|e| e.to_string())?;
            println!("{proof}");
        }
        DpopCommand::Thumbprint(args) => println!("{}", load_key(&args.key)?.thumbprint()),
    }
    Ok(())
}

pub(crate) fn mtls(command: MtlsCommand) -> Result<(), String> {
    match command {
        MtlsCommand::Thumbprint(args) => {
            let bytes = std::fs::read(&args.cert)
                .map_err(|e| format!("cannot read the certificate {}: {e}", args.cert.display()))?;
            let Ok(text) = String::from_utf8(bytes) else {
                return Err(format!(
                    "{} is not PEM text (a DER certificate?); convert it with \
                     `openssl x509 -inform DER -in {} -out client.pem` and give client.pem",
                    args.cert.display(),
                    args.cert.display()
                ));
            };
            let certificate = ClientCertificate::from_pem(&text).ok_or_else(|| {
                format!(
                    "{} holds no PEM `CERTIFICATE` block (`-----BEGIN CERTIFICATE-----`); give the client's certificate, \
                     not its key",
                    args.cert.display()
                )
            })?;
            println!("{}", certificate.thumbprint());
        }
    }
    Ok(())
}

fn write_private(path: &PathBuf, contents: &str) -> std::io::Result<()> {
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
