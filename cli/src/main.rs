//! The `tokengate` command-line tool (key management lands with the key store).

fn main() {
    eprintln!("tokengate: no commands yet");
    std::process::exit(2);
}
