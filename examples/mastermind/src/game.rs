//! The rules of Mastermind, free of any web or session concern.

use std::{fmt, str::FromStr};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Pegs in a code.
pub const PEGS: usize = 4;

/// Guesses allowed per game.
pub const MAX_GUESSES: u8 = 10;

/// The six colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    /// Red.
    R,
    /// Green.
    G,
    /// Blue.
    B,
    /// Yellow.
    Y,
    /// Orange.
    O,
    /// Purple.
    P,
}

/// Every colour, in the order of the letters `RGBYOP`.
pub const COLORS: [Color; 6] = [Color::R, Color::G, Color::B, Color::Y, Color::O, Color::P];

impl Color {
    /// The colour's letter.
    #[must_use]
    pub fn letter(self) -> char {
        match self {
            Self::R => 'R',
            Self::G => 'G',
            Self::B => 'B',
            Self::Y => 'Y',
            Self::O => 'O',
            Self::P => 'P',
        }
    }

    /// The colour's name, for people and screen readers.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::R => "red",
            Self::G => "green",
            Self::B => "blue",
            Self::Y => "yellow",
            Self::O => "orange",
            Self::P => "purple",
        }
    }

    fn from_letter(letter: char) -> Option<Self> {
        COLORS
            .into_iter()
            .find(|c| c.letter() == letter.to_ascii_uppercase())
    }
}

/// Four pegs: a secret or a guess. Written as four letters, e.g. `RGBY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub [Color; PEGS]);

impl Code {
    /// A uniformly random code from the system CSPRNG (repeats allowed).
    ///
    /// # Errors
    ///
    /// If the operating system's random source fails.
    pub fn random() -> Result<Self, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let mut pegs = [Color::R; PEGS];
        for peg in &mut pegs {
            // Rejection sampling: 252 is the largest multiple of 6 below 256.
            loop {
                let mut byte = [0u8; 1];
                rng.fill(&mut byte)?;
                if byte[0] < 252 {
                    *peg = COLORS[usize::from(byte[0] % 6)];
                    break;
                }
            }
        }
        Ok(Self(pegs))
    }

    /// Every possible code (6⁴ = 1296), in letter order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..6usize.pow(4)).map(|mut n| {
            let mut pegs = [Color::R; PEGS];
            for peg in pegs.iter_mut().rev() {
                *peg = COLORS[n % 6];
                n /= 6;
            }
            Self(pegs)
        })
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|c| write!(f, "{}", c.letter()))
    }
}

/// Why a text is not a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCode(pub String);

impl fmt::Display for InvalidCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidCode {}

impl FromStr for Code {
    type Err = InvalidCode;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let count = text.chars().count();
        if count != PEGS {
            return Err(InvalidCode(format!(
                "a guess is {PEGS} letters from R G B Y O P, not {count}"
            )));
        }
        let mut pegs = [Color::R; PEGS];
        for (peg, letter) in pegs.iter_mut().zip(text.chars()) {
            *peg = Color::from_letter(letter).ok_or_else(|| {
                InvalidCode(format!("{letter:?} is not a colour: use R G B Y O P"))
            })?;
        }
        Ok(Self(pegs))
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Feedback on a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// Right colour, right place.
    pub black: u8,
    /// Right colour, wrong place.
    pub white: u8,
}

/// Scores `guess` against `secret`.
///
/// Black pegs count positions that match. White pegs count, over the colours, the pegs the
/// two codes have in common regardless of place, minus the black ones: so a colour repeated
/// in the guess earns at most as many pegs as the secret has of it.
#[must_use]
pub fn score(secret: &Code, guess: &Code) -> Score {
    let black = secret
        .0
        .iter()
        .zip(&guess.0)
        .filter(|(s, g)| s == g)
        .count();
    let common: usize = COLORS
        .iter()
        .map(|color| {
            let in_secret = secret.0.iter().filter(|c| *c == color).count();
            let in_guess = guess.0.iter().filter(|c| *c == color).count();
            in_secret.min(in_guess)
        })
        .sum();
    // At most 4 each: the casts cannot truncate.
    Score {
        black: u8::try_from(black).unwrap_or(u8::MAX),
        white: u8::try_from(common - black).unwrap_or(u8::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Code {
        text.parse().unwrap()
    }

    fn check(secret: &str, guess: &str, black: u8, white: u8) {
        assert_eq!(
            score(&code(secret), &code(guess)),
            Score { black, white },
            "secret {secret}, guess {guess}"
        );
    }

    #[test]
    fn scores_known_cases() {
        check("RGBY", "RGBY", 4, 0);
        check("RGBY", "YBGR", 0, 4);
        check("RGBY", "OOPP", 0, 0);
        check("RGBY", "RGYB", 2, 2);
        check("RGBY", "ROOO", 1, 0);
    }

    #[test]
    fn scores_repeated_colours() {
        // A repeated colour in the guess earns only as many pegs as the secret has.
        check("RGBY", "RRRR", 1, 0);
        check("RRGG", "GGRR", 0, 4);
        check("RRGG", "RGRG", 2, 2);
        check("RRRB", "BRRR", 2, 2);
        check("RBBB", "RRRR", 1, 0);
        check("RRBB", "BRRO", 1, 2);
        check("OOOP", "POOO", 2, 2);
    }

    #[test]
    fn parses_and_prints_codes() {
        assert_eq!(code("rgby").to_string(), "RGBY");
        assert_eq!(code(" RGBY ").to_string(), "RGBY");
        assert!("RGB".parse::<Code>().is_err());
        assert!("RGBYO".parse::<Code>().is_err());
        assert!("RGBX".parse::<Code>().is_err());
        assert!("RGBé".parse::<Code>().is_err());
        assert_eq!(Code::all().count(), 1296);
        assert_eq!(Code::all().next().unwrap().to_string(), "RRRR");
        assert_eq!(Code::all().last().unwrap().to_string(), "PPPP");
    }

    #[test]
    fn random_codes_use_every_colour() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(Code::random().unwrap().0);
        }
        assert_eq!(seen.len(), 6);
    }
}
