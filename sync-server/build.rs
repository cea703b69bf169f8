// `sqlx::migrate!` embeds migrations/postgres at compile time, but cargo does not know the crate
// reads that folder; without this a new or edited migration would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=../migrations/postgres");
}
