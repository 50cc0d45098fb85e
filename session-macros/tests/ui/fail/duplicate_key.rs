#[session_macros::session]
struct State {
    score: u32,
    #[session(rename = "score")]
    points: u32,
}

fn main() {}
