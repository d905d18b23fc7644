//! Measures one argon2id hash and one verification with the parameters cityops uses, on this machine.
//!
//! Run in release, the way the server runs: `cargo run --release -p cityops-auth --example hash_timing`.

use std::time::{Duration, Instant};

use cityops_auth::password::{ITERATIONS, MEMORY_KIB, PARALLELISM};
use cityops_auth::{hash_password, verify_password};

const ROUNDS: usize = 30;

fn main() {
    let mut hashes = Vec::with_capacity(ROUNDS);
    let mut verifications = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let password = format!("measure-password-{round}");
        let started = Instant::now();
        let phc = hash_password(&password).expect("hashing works");
        hashes.push(started.elapsed());
        let started = Instant::now();
        assert!(verify_password(&password, &phc));
        verifications.push(started.elapsed());
    }
    println!(
        "argon2id m={MEMORY_KIB} KiB t={ITERATIONS} p={PARALLELISM}, {ROUNDS} rounds, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    report("hash", &mut hashes);
    report("verify", &mut verifications);
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:>6}: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}
