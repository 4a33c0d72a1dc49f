//! Tests of the cookie and header transport: sealing, parsing, the
//! verified-value cache, and which way an answer goes.

use super::*;

fn transport(private: bool) -> Transport {
    Transport {
        key: SealingKey::new(Key::generate()),
        private,
        name: "sid".into(),
        path: "/".into(),
        domain: None,
        secure: true,
        http_only: true,
        same_site: SameSite::Lax,
        header: Some(HeaderName::from_static("x-session-id")),
        verified: Default::default(),
    }
}

fn set_cookie_to_cookie(headers: &HeaderMap) -> HeaderMap {
    let set = headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    let pair = set.split(';').next().unwrap().to_owned();
    let mut request = HeaderMap::new();
    request.insert(COOKIE, HeaderValue::from_str(&pair).unwrap());
    request
}

/// A request carrying the cookie `t` sets for `id` at `token`.
fn cookie_request(t: &Transport, id: SessionId, token: ConsistencyToken) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let update = ClientUpdate::Set {
        id,
        token,
        expires_at: 10_000,
        browser_session: false,
    };
    t.write(&mut headers, update, Via::Cookie, 0);
    set_cookie_to_cookie(&headers)
}

#[test]
fn round_trips_signed_and_private() {
    for private in [false, true] {
        let t = transport(private);
        let id = SessionId::generate(None).unwrap();
        let update = ClientUpdate::Set {
            id,
            token: ConsistencyToken::new(7, 42),
            expires_at: 61_000,
            browser_session: false,
        };
        let mut headers = HeaderMap::new();
        t.write(&mut headers, update, Via::Cookie, 1_000);
        let set = headers.get(SET_COOKIE).unwrap().to_str().unwrap();
        assert!(set.contains("Max-Age=60"), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax"));
        if private {
            assert!(
                !set.contains(&id.to_string()),
                "private cookie leaks the id"
            );
        }
        let read = t.read(&set_cookie_to_cookie(&headers));
        assert_eq!(
            read,
            (Some((id, ConsistencyToken::new(7, 42))), Via::Cookie)
        );
    }
}

#[test]
fn bad_cookies_are_no_cookie() {
    let t = transport(false);
    let id = SessionId::generate(None).unwrap();
    let other_key = Transport {
        key: SealingKey::new(Key::generate()),
        verified: Default::default(),
        ..t.clone()
    };
    let mut headers = HeaderMap::new();
    other_key.write(
        &mut headers,
        ClientUpdate::Set {
            id,
            token: ConsistencyToken::new(7, 1),
            expires_at: 10_000,
            browser_session: false,
        },
        Via::Cookie,
        0,
    );
    let forged = set_cookie_to_cookie(&headers);
    let unsigned = format!("sid={id}~1");
    for bad in [
        forged.get(COOKIE).unwrap().to_str().unwrap(),
        &unsigned,
        "sid=",
        "sid=%%%%",
        "sid=\u{7f}garbage",
        "garbage",
        ";;;=;",
    ] {
        let mut request = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(bad) {
            request.insert(COOKIE, value);
        }
        let (found, via) = t.read(&request);
        assert_eq!(found, None, "accepted {bad:?}");
        // A cookie of our name that fails is marked for removal.
        let ours = request.contains_key(COOKIE)
            && bad.split(';').any(|c| c.trim_start().starts_with("sid="));
        let expected = if ours { Via::BadCookie } else { Via::Nothing };
        assert_eq!(via, expected, "{bad:?}");
    }
}

#[test]
fn non_ascii_neighbours_do_not_hide_the_session_cookie() {
    let t = transport(false);
    let id = SessionId::generate(None).unwrap();
    let mut headers = HeaderMap::new();
    let update = ClientUpdate::Set {
        id,
        token: ConsistencyToken::new(7, 3),
        expires_at: 10_000,
        browser_session: false,
    };
    t.write(&mut headers, update, Via::Cookie, 0);
    let ours = set_cookie_to_cookie(&headers)[COOKIE].as_bytes().to_vec();
    for neighbour in [&b"name=Jos\xc3\xa9"[..], b"x=\xff\xfe\x80", b"\xe9=1"] {
        for line in [
            [neighbour, b"; ", &ours].concat(),
            [&ours[..], b"; ", neighbour].concat(),
        ] {
            let mut request = HeaderMap::new();
            request.insert(COOKIE, HeaderValue::from_bytes(&line).unwrap());
            assert_eq!(
                t.read(&request),
                (Some((id, ConsistencyToken::new(7, 3))), Via::Cookie),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
    }
    // A session cookie whose own value has such bytes is no session.
    let mut spoiled = ours.clone();
    let last = spoiled.len() - 1;
    spoiled[last] = 0xff;
    let mut request = HeaderMap::new();
    request.insert(COOKIE, HeaderValue::from_bytes(&spoiled).unwrap());
    assert_eq!(t.read(&request), (None, Via::BadCookie));
}

#[test]
fn header_mode_answers_by_header_only() {
    let t = transport(false);
    let id = SessionId::generate(None).unwrap();
    let update = ClientUpdate::Set {
        id,
        token: ConsistencyToken::new(7, 7),
        expires_at: 10_000,
        browser_session: false,
    };
    let mut response = HeaderMap::new();
    t.write(&mut response, update, Via::Header, 0);
    assert!(response.get(SET_COOKIE).is_none());
    let value = response.get("x-session-id").unwrap().clone();
    let mut request = HeaderMap::new();
    request.insert("x-session-id", value);
    assert_eq!(
        t.read(&request),
        (Some((id, ConsistencyToken::new(7, 7))), Via::Header)
    );
}

#[test]
fn cookie_clients_never_get_the_session_header() {
    let t = transport(false);
    let id = SessionId::generate(None).unwrap();
    let update = ClientUpdate::Set {
        id,
        token: ConsistencyToken::new(7, 7),
        expires_at: 10_000,
        browser_session: false,
    };
    for via in [Via::Cookie, Via::Nothing, Via::BadCookie] {
        let mut response = HeaderMap::new();
        t.write(&mut response, update, via, 0);
        assert!(response.get(SET_COOKIE).is_some());
        assert!(
            response.get("x-session-id").is_none(),
            "{via:?}: the header would show scripts what HttpOnly hides"
        );
    }
    // A script adding the header (empty) to a request that carries the
    // cookie gets a header client's answer: the cookie is not used.
    let mut request = cookie_request(&t, id, ConsistencyToken::new(7, 7));
    request.insert("x-session-id", HeaderValue::from_static(""));
    assert_eq!(t.read(&request), (None, Via::Header));
}

#[test]
fn a_bad_cookie_is_removed_unless_a_new_one_replaces_it() {
    let t = transport(false);
    let mut response = HeaderMap::new();
    t.write(&mut response, ClientUpdate::Keep, Via::BadCookie, 0);
    let set = response[SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("sid=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    let mut response = HeaderMap::new();
    t.write(&mut response, ClientUpdate::Keep, Via::Nothing, 0);
    assert!(response.is_empty());
}

#[test]
fn value_parsing() {
    let id = SessionId::generate(None).unwrap();
    assert_eq!(
        parse_value(&format!("{id}~9.1f")),
        Some((id, ConsistencyToken::new(0x1f, 9)))
    );
    // A cookie from before histories: its index belongs to no history.
    assert_eq!(
        parse_value(&format!("{id}~9")),
        Some((id, ConsistencyToken::new(0, 9)))
    );
    assert_eq!(parse_value(&format!("{id}~9.")), None);
    assert_eq!(parse_value(&format!("{id}~9.zz")), None);
    assert_eq!(
        parse_value(&id.to_string()),
        Some((id, ConsistencyToken::NONE))
    );
    assert_eq!(parse_value(&format!("{id}~x")), None);
    assert_eq!(parse_value("~1"), None);
}

mod properties {
    //! The cookie value parser and the seal/open pair, on arbitrary input.
    use proptest::prelude::*;

    use super::*;

    fn id() -> impl Strategy<Value = SessionId> {
        (proptest::option::of("[a-z0-9-]{1,15}"), any::<[u8; 16]>()).prop_map(|(mesh, random)| {
            use base64::Engine as _;
            let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
            let text = match mesh {
                Some(mesh) => format!("{mesh}.{random}"),
                None => random,
            };
            SessionId::parse(&text).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn parse_value_never_panics_and_round_trips(
            text in any::<String>(),
            id in id(),
            token in any::<u64>(),
        ) {
            if let Some((id, token)) = parse_value(&text) {
                // Whatever it accepts means the same once formatted.
                prop_assert_eq!(parse_value(&format_value(&id, token)), Some((id, token)));
            }
            let value = format_value(&id, ConsistencyToken::new(token.rotate_left(17), token));
            prop_assert_eq!(parse_value(&value), Some((id, ConsistencyToken::new(token.rotate_left(17), token))));
        }

        #[test]
        fn sealed_values_open_to_what_was_sealed_and_nothing_else(
            private in any::<bool>(),
            id in id(),
            token in any::<u64>(),
            junk in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let t = transport(private);
            let mut headers = HeaderMap::new();
            let update = ClientUpdate::Set {
                id,
                token: ConsistencyToken::new(token.rotate_left(17), token),
                expires_at: 10_000,
                browser_session: false,
            };
            t.write(&mut headers, update, Via::Cookie, 0);
            let request = set_cookie_to_cookie(&headers);
            prop_assert_eq!(t.read(&request), (Some((id, ConsistencyToken::new(token.rotate_left(17), token))), Via::Cookie));
            // Arbitrary bytes as cookie and header: no panic, no session
            // (a request with the header is a header client).
            let mut bad = HeaderMap::new();
            let mut via = Via::Nothing;
            if let Ok(value) = HeaderValue::from_bytes(&junk) {
                bad.insert(COOKIE, value.clone());
                bad.insert("x-session-id", value);
                via = Via::Header;
            }
            prop_assert_eq!(t.read(&bad), (None, via));
        }
    }
}

#[test]
fn cookie_values_finds_every_value_of_the_name_as_sent() {
    let header = b"a=1; sid=x%3Dy ;sid = second;nosep; sidx=no; \xff\xfe=\xff; sid=";
    let found: Vec<&[u8]> = cookie_values(header, "sid").collect();
    assert_eq!(found, [&b"x%3Dy"[..], b"second", b""]);
    assert_eq!(cookie_values(b"", "sid").count(), 0);
    assert_eq!(cookie_values(b"sid", "sid").count(), 0, "no '=': no cookie");
}

#[test]
fn a_cookie_value_as_sent_is_not_accepted_as_a_header_value() {
    let t = transport(false);
    let id = SessionId::generate(None).unwrap();
    let request = cookie_request(&t, id, ConsistencyToken::new(7, 3));
    assert_eq!(t.read(&request).0, Some((id, ConsistencyToken::new(7, 3))));
    // The encoded form now sits in the cache; sent in the header (where
    // values are taken as is) it must still be checked, and fail.
    let sent = request[COOKIE].to_str().unwrap().split_once('=').unwrap().1;
    assert!(
        sent.contains('%'),
        "the signed value is percent-encoded: {sent}"
    );
    let mut header_request = HeaderMap::new();
    header_request.insert("x-session-id", HeaderValue::from_str(sent).unwrap());
    assert_eq!(t.read(&header_request), (None, Via::Header));
}

#[test]
fn cache_serves_verified_values_and_never_forged_ones() {
    for private in [false, true] {
        let t = transport(private);
        let id = SessionId::generate(None).unwrap();
        let request = cookie_request(&t, id, ConsistencyToken::new(7, 7));
        // First read verifies and caches, second is served from the cache.
        for _ in 0..2 {
            assert_eq!(t.read(&request).0, Some((id, ConsistencyToken::new(7, 7))));
        }
        let value = request[COOKIE].to_str().unwrap().to_owned();
        let (name, sealed) = value.split_once('=').unwrap();
        // Change one character of the sealed value at every position.
        for i in 0..sealed.len() {
            let mut forged = sealed.as_bytes().to_vec();
            forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            let mut bad = HeaderMap::new();
            bad.insert(
                COOKIE,
                HeaderValue::from_str(&format!("{name}={forged}")).unwrap(),
            );
            assert_eq!(t.read(&bad).0, None, "forged at {i}");
        }
    }
}
