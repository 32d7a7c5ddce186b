//! `twin-bench`: Twin's load harness. PLACEHOLDER: the harness (echo baseline, chat, connect,
//! actors and compare scenarios) is its own issue (#3); this binary only says so.

fn main() {
    eprintln!("twin-bench: the load harness is not built yet (issue #3, \"Bench harness\").");
    std::process::exit(2);
}
