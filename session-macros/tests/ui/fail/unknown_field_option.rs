#[session_macros::session]
struct State {
    #[session(renam = "points")]
    score: u32,
}

fn main() {}
