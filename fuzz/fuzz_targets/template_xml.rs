//! See `oneha_fuzz::template_xml` for the property checked. `FUZZ_XML_WELLFORMED=0` checks only
//! that the writer does not panic: the well-formedness fixes are issue 10 point 4's.
#![no_main]

use std::sync::OnceLock;

fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var("FUZZ_XML_WELLFORMED").as_deref() != Ok("0"))
}

libfuzzer_sys::fuzz_target!(|input: oneha_fuzz::TemplateInput| {
    oneha_fuzz::template_xml(&input, strict())
});
