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
    /// The request's URL as the server's public URL names it (`htu`; query and fragment are
    /// ignored by the server).
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

fn load_key(path: &PathBuf) -> Result<DpopKey, String> {
    DpopKey::from_pkcs8_pem(&read(path, "DPoP key")?).map_err(|e| {
        format!(
            "{}: {e}; make one with `tokengate dpop key --out {}`",
            path.display(),
            path.display()
        )
    })
}

pub(crate) fn dpop(command: DpopCommand) -> Result<(), String> {
    match command {
        DpopCommand::Key(args) => {
            let key = DpopKey::generate().map_err(|e| e.to_string())?;
            write_private(&args.out, &key.to_pkcs8_pem())
                .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
            println!("{}", key.thumbprint());
        }
        DpopCommand::Proof(args) => {
            let method = args.method.to_ascii_uppercase();
            if !args.url.starts_with("https://") && !args.url.starts_with("http://") {
                return Err(format!(
                    "--url {:?} must be the absolute URL of the request, e.g. https://api.example.com/api/transfers",
                    args.url
                ));
            }
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
            let certificate = ClientCertificate::from_pem(&read(&args.cert, "certificate")?)
                .ok_or_else(|| format!("{} holds no PEM `CERTIFICATE` block", args.cert.display()))?;
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
