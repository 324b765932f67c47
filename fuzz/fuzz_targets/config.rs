//! The configuration file: parsing and validation never panic; what validates also redacts.
#![no_main]

use ecr_deployd::config::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(settings) = Settings::from_toml(text) {
        let _ = settings.to_redacted_toml();
    }
});
