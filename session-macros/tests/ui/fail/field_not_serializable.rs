struct Secret {
    bytes: Vec<u8>,
}

#[session_macros::session]
struct State {
    secret: Secret,
}

fn main() {}
