//! Runs the fuzz targets on stable Rust, without libFuzzer: every seed of
//! `corpus/<target>/`, then random mutations of them (bit flips, byte edits, splices,
//! insertions of token syntax) until a time or iteration budget runs out. A panic is saved to
//! `artifacts/<target>/crash-<n>` and ends the run with a failure.
//!
//! ```text
//! cargo run --release --bin fuzz-loop -- all --seconds 120
//! cargo run --release --bin fuzz-loop -- jwt --iterations 100000 --seed 7
//! cargo run --release --bin fuzz-loop -- jwt --replay artifacts/jwt/crash-0
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fragments of token syntax the mutator splices in.
const DICTIONARY: &[&[u8]] = &[
    b"Bearer ",
    b"bearer ",
    b"Basic ",
    b"__session=",
    b"; ",
    b"\"",
    b"=",
    b".",
    b"ak_",
    b"mt_",
    b"oat_",
    b"eyJ",
    b"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
    b"{\"alg\":\"none\"}",
    b"\"kid\":",
    b"\"crit\":[\"exp\"]",
    b"\"exp\":",
    b"\"nbf\":",
    b"\"iat\":",
    b"\"sub\":\"mch_1\"",
    b"\"sub\":\"user_1\"",
    b"\"aud\":[",
    b"\"o\":{\"id\":\"org_1\",\"rol\":\"admin\",\"per\":\"a,b\",\"fpm\":\"3\"}",
    b"\"fea\":\"o:x,u:y\"",
    b"9999999999999999999999",
    b"-1",
    b"1e308",
    b"null",
    b"\\u0000",
    b"\n",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(16)).min(input.len());
                input.drain(start..end);
            }
            3 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            4 | 5 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())];
                let i = rng.below(input.len() + 1);
                input.splice(i..i, word.iter().copied());
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = start + rng.below(other.len() - start + 1);
                    let i = rng.below(input.len() + 1);
                    input.splice(i..i, other[start..end].iter().copied());
                }
            }
            _ => {
                let n = rng.below(64);
                input.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    input.truncate(64 * 1024);
}

fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if let Ok(bytes) = std::fs::read(&path) {
                seeds.push(bytes);
            }
        }
    }
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

/// Runs one input, catching a panic; `Err` with the panic message.
fn run_one(target: &str, data: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| {
        tokengate_fuzz::run(target, data);
    })
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

fn save_crash(root: &Path, target: &str, data: &[u8]) -> PathBuf {
    let dir = root.join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let mut n = 0;
    while dir.join(format!("crash-{n}")).exists() {
        n += 1;
    }
    let path = dir.join(format!("crash-{n}"));
    let _ = std::fs::write(&path, data);
    path
}

fn usage() -> ! {
    eprintln!(
        "usage: fuzz-loop <{}|all> [--seconds N] [--iterations N] [--seed N] [--replay FILE]",
        tokengate_fuzz::TARGETS.join("|")
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| usage());
    let mut seconds = 60u64;
    let mut iterations = u64::MAX;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut replay = None;
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--seconds" => seconds = value.parse().unwrap_or_else(|_| usage()),
            "--iterations" => iterations = value.parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value.parse::<u64>().unwrap_or_else(|_| usage()) | 1,
            "--replay" => replay = Some(PathBuf::from(value)),
            _ => usage(),
        }
    }
    let targets: Vec<&str> = if target == "all" {
        tokengate_fuzz::TARGETS.to_vec()
    } else if tokengate_fuzz::TARGETS.contains(&target.as_str()) {
        vec![target.as_str()]
    } else {
        usage()
    };
    if let Some(path) = replay {
        let data = std::fs::read(&path).unwrap_or_else(|e| {
            eprintln!("cannot read {}: {e}", path.display());
            std::process::exit(2)
        });
        for t in &targets {
            match run_one(t, &data) {
                Ok(()) => println!("{t}: {} passes", path.display()),
                Err(message) => {
                    eprintln!("{t}: {} panics: {message}", path.display());
                    std::process::exit(1)
                }
            }
        }
        return;
    }
    // Panics are reported by the loop with the input saved; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let budget = Duration::from_secs(seconds) / targets.len() as u32;
    let mut rng = Rng(seed);
    println!("fuzz-loop: seed {seed}, {budget:?} per target");
    let mut failed = false;
    for t in targets {
        let corpus = load_corpus(&root.join("corpus").join(t));
        let started = Instant::now();
        let mut runs = 0u64;
        for seed_input in &corpus {
            runs += 1;
            if let Err(message) = run_one(t, seed_input) {
                let path = save_crash(root, t, seed_input);
                eprintln!("{t}: a seed panics ({message}); saved to {}", path.display());
                failed = true;
            }
        }
        while runs < iterations && started.elapsed() < budget {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &corpus, &mut input);
            runs += 1;
            if let Err(message) = run_one(t, &input) {
                let path = save_crash(root, t, &input);
                eprintln!(
                    "{t}: panic after {runs} runs: {message}; input saved to {}",
                    path.display()
                );
                failed = true;
                break;
            }
        }
        println!(
            "{t}: {runs} runs in {:?} ({} seeds), no panic{}",
            started.elapsed(),
            corpus.len(),
            if failed { " until the one reported" } else { "" }
        );
    }
    if failed {
        std::process::exit(1);
    }
}
