//! The login example: who is signed in ([`account`]), the form token ([`csrf`]) and the
//! pages ([`pages`]).
#![forbid(unsafe_code)]

pub mod account;
pub mod csrf;
pub mod pages;
