//! Queue message bodies: classification never panics, and whatever it accepts is well formed.
#![no_main]

use ecr_deployd::event::{Classified, Digest, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Classified::Reconcile(push) = classify(body) {
        // An accepted push names a valid digest, repository and tag, round-tripping.
        assert!(Digest::parse(push.digest_hint.as_str()).is_ok());
        let again = ecr_deployd::event::ImageRef::parse_repo_tag(&push.image.to_string());
        assert_eq!(
            again.map(|i| (i.repository, i.tag)).ok(),
            Some((push.image.repository, push.image.tag))
        );
    }
});
