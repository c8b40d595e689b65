#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // regsweep turns the parquet crate's panics into errors
    // (catch_unwind in src/s3_inventory/parquet.rs); libfuzzer-sys's hook
    // would abort on them all the same. Back to the default hook: a panic
    // that escapes regsweep still ends in libfuzzer-sys's abort, a crash.
    init: drop(std::panic::take_hook()),
    |data: &[u8]| {
        regsweep::untrusted::parquet(data);
    }
);
