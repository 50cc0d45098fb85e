#[session_macros::session(version = 1, version = 2)]
struct State {
    score: u32,
}

fn main() {}
