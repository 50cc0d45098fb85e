use session_macros::session;

#[session(migrate(from = 1, with = upgrade))]
struct Game {
    score: u32,
}

fn main() {}
