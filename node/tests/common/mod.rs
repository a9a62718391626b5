//! What the node's integration tests share.

use gatehouse_node::home::Home;
use gatehouse_node::library::{InitOptions, Library};
use gatehouse_protocol::vocab::{Nation, Setting};

/// A new node for HMP Northgate founding a network of its own, in a new
/// temporary directory (kept alive by the first value).
pub fn new_site() -> (tempfile::TempDir, Home, Library) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("node"));
    let (lib, _) = Library::init(
        &home,
        &InitOptions {
            establishment: "HMP Northgate".into(),
            setting: Setting::LocalRemand,
            nation: Nation::England,
            network_name: "Test network".into(),
            member_name: "Healthcare manager".into(),
        },
    )
    .expect("init");
    (dir, home, lib)
}
