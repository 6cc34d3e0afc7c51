//! Links pam_mapi.so with `-z nodelete`, so that the dynamic loader keeps it
//! mapped after libpam's dlclose in pam_end.
//!
//! Without the flag, every pam_start maps the module afresh and every pam_end
//! unmaps it. Heap memory that a dependency's `static` allocated on first use is
//! then lost on each unload. ureq 3.5 allocates its Accept-Encoding string in a
//! `LazyLock` on the first request, so a saslauthd worker lost 10 bytes per
//! authentication (valgrind: "definitely lost"). With the flag, such statics are
//! set up once per process.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
