//! The example server (skeleton): grows with the verifiers and the attributes.

use clap::Parser;
use tokengate::report::Format;
use tokengate::routing::{Router, get};

#[derive(Parser, Debug)]
#[command(about = "tokengate example server")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TOKENGATE_ADDR", default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
    /// Print the route-policy report and exit.
    #[arg(long)]
    policy_report: bool,
    /// Report format.
    #[arg(long, default_value = "markdown", requires = "policy_report")]
    format: String,
}

async fn health() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let app: Router = Router::new().route("/health", get(health));
    if args.policy_report {
        match args.format.parse::<Format>() {
            Ok(format) => println!("{}", app.report().render(format)),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.addr);
            std::process::exit(2);
        }
    };
    println!("listening on http://{}", args.addr);
    if let Err(e) = axum::serve(listener, app.into_axum()).await {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}
