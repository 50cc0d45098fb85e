use session_macros::session;

#[session(version = 2, migrate(from = 1))]
struct Game {
    score: u32,
}

#[session(namespace = "other", version = 2, migrate(with = upgrade))]
struct Other {
    score: u32,
}

#[session(namespace = "third", version = 2, migrate(from = 1, with = upgrade, wiht = x))]
struct Third {
    score: u32,
}

fn main() {}
