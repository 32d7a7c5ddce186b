//! Web origins as the chat socket and the widget's tickets compare them: `scheme://host[:port]`,
//! lowercase, the default port left out, so `https://Maya.example:443` in a creator's list matches
//! the `https://maya.example` a browser sends. Anything else (`null` from a sandboxed frame or a
//! file, a path, user info) is not an origin and matches nothing.

/// The canonical form of `origin`, or `None` when it is not an `http`/`https` origin.
pub fn canonical(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ', '\\']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal without a port (`[::1]`) has colons inside its brackets only.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    if host.is_empty() {
        return None;
    }
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => None,
        Some(port) if port == default_port => Some(format!("{scheme}://{host}")),
        Some(port) => Some(format!("{scheme}://{host}:{port}")),
    }
}

/// Whether `origin` is the server's own (the page asking was served by this host, such as the
/// dashboard's "test my twin"): its host and port are the request's `Host`.
pub fn is_same_host(origin: &str, host: &str) -> bool {
    let Some(origin) = canonical(origin) else {
        return false;
    };
    let Some((scheme, _)) = origin.split_once("://") else {
        return false;
    };
    canonical(&format!("{scheme}://{host}")).is_some_and(|own| own == origin)
}

/// Whether `origin` is one of `allowed` (an empty list allows none).
pub fn is_allowed(allowed: &[String], origin: &str) -> bool {
    let Some(origin) = canonical(origin) else {
        return false;
    };
    allowed.iter().filter_map(|a| canonical(a)).any(|a| a == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_origin_is_the_requests_host() {
        assert!(is_same_host("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(is_same_host("https://Twin.Example", "twin.example"));
        assert!(is_same_host("https://twin.example", "twin.example:443"));
        assert!(!is_same_host("http://127.0.0.1:9999", "127.0.0.1:8080"), "another port is another origin");
        assert!(!is_same_host("https://evil.example", "twin.example"));
        assert!(!is_same_host("null", "twin.example"));
        assert!(!is_same_host("https://twin.example", "twin.example/path"));
    }

    #[test]
    fn origins_compare_in_their_canonical_form() {
        let table = [
            ("https://maya.example", Some("https://maya.example")),
            ("https://Maya.Example:443", Some("https://maya.example")),
            ("http://localhost:80", Some("http://localhost")),
            ("http://localhost:8000", Some("http://localhost:8000")),
            ("https://maya.example:80", Some("https://maya.example:80")),
            ("http://[::1]:3000", Some("http://[::1]:3000")),
            ("http://[::1]", Some("http://[::1]")),
            ("null", None),
            ("file://", None),
            ("ftp://maya.example", None),
            ("https://maya.example/", None),
            ("https://maya.example/path", None),
            ("https://user@maya.example", None),
            ("https://maya.example:", None),
            ("https://maya.example:x", None),
            ("https://", None),
            ("", None),
        ];
        for (input, expected) in table {
            assert_eq!(canonical(input).as_deref(), expected, "{input:?}");
        }
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let allowed = vec!["https://maya.example".to_owned(), "http://localhost:8000".to_owned()];
        assert!(is_allowed(&allowed, "https://maya.example"));
        assert!(is_allowed(&allowed, "https://MAYA.example:443"));
        assert!(is_allowed(&allowed, "http://localhost:8000"));
        assert!(!is_allowed(&allowed, "http://maya.example"), "another scheme");
        assert!(!is_allowed(&allowed, "https://evil.maya.example"));
        assert!(!is_allowed(&allowed, "http://localhost:8001"));
        assert!(!is_allowed(&allowed, "null"));
        assert!(!is_allowed(&[], "https://maya.example"), "an empty list allows no site");
    }
}
