#[session_macros::session(nmespace = "game")]
struct State {
    score: u32,
}

fn main() {}
