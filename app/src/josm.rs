//! Hand-off to JOSM through its remote control (<https://josm.openstreetmap.de/wiki/Help/RemoteControlCommands>):
//! a running JOSM with "Enable remote control" on listens at `127.0.0.1:8111`. The whole list
//! goes as `load_data` with the same JOSM XML the "Export for JOSM" button writes (a new layer
//! the mapper reviews and uploads from); one tag goes as `add_node` with its OSM tags. JOSM
//! uploads nothing by itself. Plain Rust: the page sends the URLs.

/// JOSM's remote control, plain HTTP on the loopback address.
pub const REMOTE_CONTROL: &str = "http://127.0.0.1:8111";

/// The layer JOSM opens for the mapper's tags.
pub const LAYER_NAME: &str = "AccessAtlas tags";

/// `s` percent-encoded for a URL's query (RFC 3986: unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `load_data` with a JOSM XML file's text, into a new layer JOSM may upload from.
pub fn load_data_url(josm_xml: &str) -> String {
    format!(
        "{REMOTE_CONTROL}/load_data?new_layer=true&layer_name={}&upload_policy=true&data={}",
        encode(LAYER_NAME),
        encode(josm_xml)
    )
}

/// `add_node` at a point with OSM tags (`addtags`: `key=value` joined by `|`).
pub fn add_node_url(lat: f64, lon: f64, tags: &[(String, String)]) -> String {
    let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{REMOTE_CONTROL}/add_node?lat={lat:.7}&lon={lon:.7}&addtags={}",
        encode(&tags.join("|"))
    )
}

/// Sends a remote-control URL; JOSM answers `OK`. When nothing answers, the error says how
/// to turn remote control on.
#[cfg(target_arch = "wasm32")]
pub async fn send(url: &str) -> Result<(), String> {
    match crate::net::begin(url).text().await {
        Ok(_) => Ok(()),
        Err(e) if e.contains("could not be loaded") => Err(format!(
            "JOSM did not answer at {REMOTE_CONTROL}. Start JOSM and tick Preferences > Remote Control > Enable remote control, then try again."
        )),
        Err(e) => Err(format!("JOSM refused the request: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').unwrap().1;
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let bytes: Vec<u8> = {
                    let b = v.as_bytes();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while i < b.len() {
                        if b[i] == b'%' {
                            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                            i += 3;
                        } else {
                            out.push(b[i]);
                            i += 1;
                        }
                    }
                    out
                };
                (k.to_string(), String::from_utf8(bytes).unwrap())
            })
            .collect()
    }

    #[test]
    fn urls_carry_the_file_and_the_tags_intact() {
        let xml =
            "<?xml version=\"1.0\"?>\n<osm upload=\"true\"><tag k=\"note\" v=\"a&amp;b é\"/></osm>";
        let url = load_data_url(xml);
        assert!(url.starts_with("http://127.0.0.1:8111/load_data?"), "{url}");
        // The file's own `&`, `<`, quotes, spaces and line ends are all encoded.
        assert_eq!(url.matches('&').count(), 3, "{url}");
        assert!(!url.contains([' ', '<', '"', '\n']), "{url}");
        let q = query(&url);
        assert_eq!(q.iter().find(|(k, _)| k == "data").unwrap().1, xml);
        assert_eq!(q.iter().find(|(k, _)| k == "layer_name").unwrap().1, LAYER_NAME);
        let tags =
            vec![("barrier".to_string(), "kerb".to_string()), ("kerb".into(), "lowered".into())];
        let url = add_node_url(60.1699, 24.9384, &tags);
        let q = query(&url);
        assert_eq!(q[0], ("lat".to_string(), "60.1699000".to_string()));
        assert_eq!(q[1], ("lon".to_string(), "24.9384000".to_string()));
        assert_eq!(q[2].1, "barrier=kerb|kerb=lowered");
    }
}
