#[session_macros::session]
struct State(u32, String);

fn main() {}
