//! Image index manifests from the registry: parsing never panics; entries have valid digests.
#![no_main]

use ecr_deployd::image::{INDEX_MEDIA_TYPES, Platform, index_entries};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(manifest) = std::str::from_utf8(rest) else {
        return;
    };
    let media_type = INDEX_MEDIA_TYPES.get(first as usize % 3).copied();
    if let Ok(entries) = index_entries(media_type, manifest) {
        let host = Platform::new("linux", "amd64", None);
        for e in entries {
            assert!(e.digest.as_str().starts_with("sha256:"));
            let _ = host.runs(&e.platform);
        }
    }
});
