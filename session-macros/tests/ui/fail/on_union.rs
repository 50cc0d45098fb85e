#[session_macros::session]
union State {
    a: u32,
    b: f32,
}

fn main() {}
