#[derive(serde::Serialize, serde::Deserialize)]
struct Board {
    cells: Vec<u8>,
}

#[session_macros::session]
struct State {
    #[session(default)]
    board: Board,
}

fn main() {}
