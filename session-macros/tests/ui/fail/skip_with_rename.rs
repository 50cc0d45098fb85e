#[session_macros::session]
struct State {
    #[session(skip, rename = "cache")]
    cache: u32,
}

fn main() {}
