//! Serves the web tests' library (the samples, revised, superseded,
//! withdrawn and hostile items, and a moderated thread) on loopback for
//! the API fuzzer (`tests/api/schemathesis`): prints the base address on
//! its first line, then serves until killed.

use gatehouse_tests::library_site::LibrarySite;

fn main() -> anyhow::Result<()> {
    let site = LibrarySite::start()?;
    println!("{}", site.base);
    loop {
        std::thread::park();
    }
}
