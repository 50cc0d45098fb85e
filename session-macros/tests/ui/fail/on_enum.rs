#[session_macros::session]
enum State {
    Playing,
    Won,
}

fn main() {}
