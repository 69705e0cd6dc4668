//! The app's Import takes a Hub id too: typed into the Adapters screen, the adapter is downloaded
//! through the mock Hub and listed in the library. One test in this file: it sets the process's Hub
//! environment before the engine starts, with no other test running beside it.

mod harness;

use std::collections::HashMap;

use dialora_tests::fixtures;
use dialora_tests::mock_hub::MockHub;
use dialora_ui::screens::Screen;
use harness::*;

#[test]
fn the_app_imports_an_adapter_by_its_hub_id() {
    let home = tempfile::tempdir().unwrap();
    let hf_home = home.path().join("hf");
    let repo = home.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(
            fixtures().join("adapters/gated-a").join(file),
            repo.join(file),
        )
        .unwrap();
    }
    let hub = MockHub::start(HashMap::from([(
        "someone/flan-t5-meetings-lora".to_string(),
        repo,
    )]));
    // SAFETY: the only test of this executable sets them before the engine's threads start.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &hub.endpoint);
        std::env::set_var("HF_HOME", &hf_home);
        std::env::remove_var("HF_HUB_OFFLINE");
    }
    let mut harness = app(home.path(), PLENTY);
    go_to(&mut harness, Screen::Adapters);
    type_into(
        &mut harness,
        "Import a file or folder:",
        "someone/flan-t5-meetings-lora",
    );
    click(&mut harness, "Import adapter");
    wait(&mut harness, "the adapter from the Hub", |s| {
        s.library.len() == 1 && !s.busy()
    });
    let entry = &harness.state().state.library[0];
    assert_eq!(entry.name, "flan-t5-meetings-lora");
    assert_eq!(entry.base_model, "t5-gated");
    assert_eq!(entry.rank, 4);
    assert!(hub.files_served() >= 2, "downloaded through the Hub");
    assert!(
        home.path()
            .join("adapters/flan-t5-meetings-lora/adapter_model.safetensors")
            .is_file()
    );
    assert!(
        hf_home
            .join("hub/models--someone--flan-t5-meetings-lora")
            .is_dir(),
        "into the standard cache"
    );
}
