use session_macros::session;

#[session(namespace = "game", version = 2)]
struct GameV2 {
    score: u32,
}

fn same(old: GameV2) -> Result<Game, std::convert::Infallible> {
    Ok(Game { score: old.score })
}

#[session(namespace = "game", version = 2, migrate(from = 2, with = same))]
struct Game {
    score: u32,
}

fn main() {}
