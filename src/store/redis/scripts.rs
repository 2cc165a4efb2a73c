//! The Lua scripts (`src/store/scripts/`), assembled: each is one atomic
//! step in Redis; Issue's and Refresh's come in the batch form of the group
//! commit (`store/batch.rs`).

/// The batch form of a script (`Batcher`): its body becomes
/// `run(KEYS, ARGV, SHARED)`.
macro_rules! batched {
    ($($prelude:literal),* ; $body:literal) => {
        concat!(
            $(include_str!(concat!("../scripts/", $prelude)),)*
            "local function run(KEYS, ARGV, SHARED)\n",
            include_str!(concat!("../scripts/", $body)),
            "end\n",
            include_str!("../scripts/batch.lua")
        )
    };
}

pub(super) const CREATE_LUA: &str = batched!("common.lua", "gcra.lua"; "create.lua");
pub(super) const ROTATE_LUA: &str = batched!("common.lua", "gcra.lua"; "rotate.lua");
pub(super) const REVOKE_LUA: &str = concat!(
    include_str!("../scripts/common.lua"),
    include_str!("../scripts/revoke.lua")
);
pub(super) const RENEW_LUA: &str = concat!(
    include_str!("../scripts/common.lua"),
    include_str!("../scripts/renew.lua")
);
pub(super) const LIST_LUA: &str = concat!(
    include_str!("../scripts/common.lua"),
    include_str!("../scripts/list.lua")
);
pub(super) const OWNER_LUA: &str = concat!(
    include_str!("../scripts/common.lua"),
    include_str!("../scripts/owner.lua")
);
/// The last id ever generated in the log (XINFO STREAM), "" without a log.
pub(super) const LOG_HEAD_LUA: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then return info[i + 1] end
end
return ''";
pub(super) const RATE_LUA: &str = batched!("gcra.lua"; "rate.lua");

#[cfg(test)]
mod tests {
    #[test]
    fn the_scripts_history_ring_matches_reuse_history() {
        let line = format!("local HISTORY = {}\n", crate::store::REUSE_HISTORY);
        assert!(super::ROTATE_LUA.contains(&line), "common.lua: {line}");
    }

    #[test]
    fn the_scripts_log_and_channel_are_the_schemas() {
        use crate::store::schema::{channel, LOG};
        let line = format!("local LOG, CHANNEL = '{LOG}', '{}'\n", channel(""));
        assert!(super::CREATE_LUA.contains(&line), "common.lua: {line}");
    }
}
