//! The key layout in Redis and the encoding of the values stored there.
//! Everything a writer in another language must reproduce lives here and in
//! [`super::script`] (and is described in `docs/redis.md`).

/// Default first part of every key.
pub const DEFAULT_PREFIX: &str = "cedar";
/// Default partition: the hash tag that keeps all keys in one cluster slot.
pub const DEFAULT_PARTITION: &str = "p0";

/// The five keys of one entity dataset. They share the hash tag
/// `{partition}`, so on Redis Cluster they live in one slot and one script
/// can touch all of them atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// HASH: field = entity uid (`Type::"id"`), value = `<rev>:<entity JSON>`.
    pub entities: String,
    /// STRING counter: the revision of the last write.
    pub revision: String,
    /// STREAM: one entry `<rev>-0` per write, carrying the full new state.
    pub log: String,
    /// STRING: the dataset generation, a random id set by the first write.
    pub generation: String,
    /// HASH: field = template link id, value = `<rev>:<link JSON>` (the
    /// Cedar CLI's `--template-linked` form of one link).
    pub links: String,
}

impl KeyLayout {
    /// Keys for `prefix` and `partition` (`cedar:{p0}:ent` and so on).
    pub fn new(prefix: &str, partition: &str) -> Self {
        let base = format!("{prefix}:{{{partition}}}");
        Self {
            entities: format!("{base}:ent"),
            revision: format!("{base}:rev"),
            log: format!("{base}:log"),
            generation: format!("{base}:gen"),
            links: format!("{base}:lnk"),
        }
    }
}

impl Default for KeyLayout {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX, DEFAULT_PARTITION)
    }
}

/// Splits a hash value `<rev>:<JSON>` (an entity or a link) into its
/// revision and JSON.
pub fn decode_hash_value(value: &[u8]) -> Option<(u64, &[u8])> {
    let colon = value.iter().position(|b| *b == b':')?;
    let revision = std::str::from_utf8(&value[..colon]).ok()?.parse().ok()?;
    Some((revision, &value[colon + 1..]))
}

/// The stream entry id of revision `rev`.
pub fn entry_id(rev: u64) -> String {
    format!("{rev}-0")
}

/// The revision of a stream entry id `<rev>-0` (`None` for other ids,
/// which no correct writer produces).
pub fn parse_entry_id(id: &str) -> Option<u64> {
    let (rev, seq) = id.split_once('-')?;
    if seq != "0" {
        return None;
    }
    rev.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = KeyLayout::default();
        assert_eq!(keys.entities, "cedar:{p0}:ent");
        assert_eq!(keys.revision, "cedar:{p0}:rev");
        assert_eq!(keys.log, "cedar:{p0}:log");
        assert_eq!(keys.generation, "cedar:{p0}:gen");
        assert_eq!(keys.links, "cedar:{p0}:lnk");
    }

    #[test]
    fn hash_values_and_entry_ids_round_trip() {
        assert_eq!(
            decode_hash_value(b"12:{\"a\":1}"),
            Some((12, &b"{\"a\":1}"[..]))
        );
        assert_eq!(decode_hash_value(b"x:{}"), None);
        assert_eq!(decode_hash_value(b"{}"), None);
        assert_eq!(parse_entry_id(&entry_id(42)), Some(42));
        assert_eq!(parse_entry_id("42-1"), None);
    }
}
