//! Finding the session cookie in the request's `Cookie` headers, without parsing the other
//! cookies into a jar.

use actix_web::http::header::{self, HeaderMap};

/// The values of every cookie called `name` the request carries, in order (a browser sends
/// the one with the most specific path first).
pub(crate) fn values<'r>(headers: &'r HeaderMap, name: &'r str) -> impl Iterator<Item = &'r str> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim_start().split_once('=')?;
            (key.trim_end() == name).then(|| value.trim().trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE};

    use super::values;

    fn headers(cookies: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in cookies {
            map.append(COOKIE, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let map = headers(&["theme=dark; session=abc", "session=def"]);
        assert_eq!(values(&map, "session").collect::<Vec<_>>(), ["abc", "def"]);
        let map = headers(&["session_x=abc; xsession=1;session = \"q\""]);
        assert_eq!(values(&map, "session").collect::<Vec<_>>(), ["q"]);
        assert_eq!(values(&headers(&[]), "session").count(), 0);
        assert_eq!(values(&headers(&["session"]), "session").count(), 0);
    }
}
