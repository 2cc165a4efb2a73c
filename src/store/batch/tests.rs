//! The batcher on a real Redis Cluster (3 masters) and a real Redis: every
//! call gets its own reply, calls of one slot run in the order they were
//! made, and a call sent to a master that does not serve its slot is sent
//! again where it belongs. No timing is asserted.

use std::collections::HashMap;

use fred::prelude::*;
use fred::types::Value as RedisValue;
use tessera_test_support::{RedisCluster, RedisServer};

use super::*;

/// A test script in the batch form: appends its argument to its key's list
/// and replies with the key, the argument, the list's new length and its
/// shared arguments.
const APPEND_LUA: &str = concat!(
    "local function run(KEYS, ARGV, SHARED)\n",
    "local n = redis.call('RPUSH', KEYS[1], ARGV[1])\n",
    "return {KEYS[1], ARGV[1], n, table.concat(SHARED, ',')}\n",
    "end\n",
    include_str!("../scripts/batch.lua")
);

async fn client(url: &str) -> Client {
    let client = Builder::from_config(Config::from_url(url).expect("url"))
        .build()
        .expect("client");
    client.init().await.expect("connect");
    client
}

/// 20 keys of distinct tags, so of distinct slots spread over the masters.
fn keys() -> Vec<String> {
    (0..20).map(|i| format!("{{t{i}}}:list")).collect()
}

/// Many concurrent calls over 20 slots: each reply is its own call's, and
/// each list holds its values in the order the calls were made.
async fn replies_and_order(client: &Client) {
    let batcher = Batcher::spawn(client.clone(), APPEND_LUA);
    let mut calls: Vec<_> = (0..400)
        .map(|i| {
            let key = keys()[i % 20].clone();
            let batcher = batcher.clone();
            // Unconstrained: tokio's co-operative budget would otherwise
            // make a later send wait, and the order of the sends with it.
            Box::pin(tokio::task::unconstrained(async move {
                // Every third call has a second (unused) argument, so
                // that batches mix calls of different argument counts.
                let mut args = vec![RedisValue::from(i.to_string())];
                if i % 3 == 0 {
                    args.push(RedisValue::from("unused"));
                }
                // Most calls share their shared arguments; every seventh
                // has its own, so that some batches send them per call.
                let shared = if i % 7 == 0 {
                    vec![i.to_string(), "s".into()]
                } else {
                    vec!["p".into(), "s".into()]
                };
                let want = shared.join(",");
                let shared = shared.into_iter().map(RedisValue::from).collect();
                let reply = batcher.call(vec![key.clone()], args, shared).await;
                (key, i, want, reply)
            }))
        })
        .collect();
    // One poll each, in order, queues the calls in that order (the channel
    // has room for all); then they are awaited together.
    for call in &mut calls {
        assert!(futures::poll!(call.as_mut()).is_pending());
    }
    for (key, i, shared, reply) in futures::future::join_all(calls).await {
        let RedisValue::Array(items) = reply.expect("a reply") else {
            panic!("not an array");
        };
        assert_eq!(items[0].as_str().as_deref(), Some(key.as_str()));
        assert_eq!(items[1].as_str().as_deref(), Some(i.to_string().as_str()));
        assert_eq!(items[3].as_str().as_deref(), Some(shared.as_str()));
    }
    for (k, key) in keys().iter().enumerate() {
        let list: Vec<String> = client.lrange(key.as_str(), 0, -1).await.expect("lrange");
        let want: Vec<String> = (0..400)
            .filter(|i| i % 20 == k)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(list, want, "{key}: calls of one slot run in order");
    }
}

#[tokio::test]
async fn on_a_cluster_every_call_gets_its_reply_and_a_slot_keeps_its_order() {
    let cluster = RedisCluster::start(3).await;
    replies_and_order(&client(&cluster.url()).await).await;
}

#[tokio::test]
async fn on_one_redis_every_call_gets_its_reply_and_a_key_keeps_its_order() {
    let server = RedisServer::start().await;
    replies_and_order(&client(&server.url()).await).await;
}

/// A master's batch that holds calls of another master's slots (what a stale
/// slot map would send): those fail there untouched and are sent again by
/// slot, so every call still gets its own reply, once.
#[tokio::test]
async fn a_call_sent_to_the_wrong_master_is_sent_again_where_it_belongs() {
    let cluster = RedisCluster::start(3).await;
    let client = client(&cluster.url()).await;
    let map = client.cached_cluster_state().expect("a slot map");
    let mut by_node: HashMap<Server, Vec<String>> = HashMap::new();
    for key in keys() {
        let slot = fred::util::redis_keyslot(key.as_bytes());
        let node = map.get_server(slot).expect("an owner").clone();
        by_node.entry(node).or_default().push(key);
    }
    assert!(by_node.len() >= 2, "20 tags over 3 masters");
    let forms = Forms {
        plain: Script::from_lua(APPEND_LUA),
        cross: Some(Script::from_lua(format!("{CROSS_SLOT}{APPEND_LUA}"))),
    };
    let mut calls = Vec::new();
    let mut replies = Vec::new();
    for (i, key) in keys().into_iter().enumerate() {
        let (done, reply) = oneshot::channel();
        calls.push(Call {
            keys: vec![Key::from(key.clone())],
            args: vec![RedisValue::from(i.to_string())],
            shared: vec![RedisValue::from("s")],
            done,
        });
        replies.push((key, reply));
    }
    let stale = send_lane(&client, &forms, true, calls).await;
    assert!(stale, "some calls met a master that does not serve them");
    for (key, reply) in replies {
        let reply = reply.await.expect("answered").expect("a reply");
        let RedisValue::Array(items) = reply else {
            panic!("not an array");
        };
        assert_eq!(items[0].as_str().as_deref(), Some(key.as_str()));
        assert_eq!(items[2].as_i64(), Some(1), "{key} written once");
    }
}

/// The batch form's arguments: declared calls' keys in KEYS, the others'
/// inline before their arguments, the counts once when every call has the
/// same, the shared arguments once when every call has the same ones; the
/// same whether the calls keep their keys and arguments for a second send or
/// give them up.
#[test]
fn a_batch_declares_only_its_first_calls_keys() {
    let call = |k: &str, a: &[&str], s: &[&str]| Call {
        keys: vec![Key::from(k)],
        args: a.iter().map(|&a| RedisValue::from(a)).collect(),
        shared: s.iter().map(|&s| RedisValue::from(s)).collect(),
        done: oneshot::channel().0,
    };
    let text = |args: Vec<RedisValue>| -> Vec<String> {
        args.iter().map(|a| a.as_string().expect("text")).collect()
    };
    let mut calls = [call("{a}k", &["1"], &["s"]), call("{b}k", &["2"], &["s"])];
    let (keys, args) = encode(&mut calls, 1, Sent::MaybeAgain);
    assert_eq!(keys, vec![Key::from("{a}k")]);
    let once = ["2", "1", "1", "1", "1", "1", "s", "1", "{b}k", "2"];
    assert_eq!(text(args), once);
    assert!(calls
        .iter()
        .all(|c| c.keys.len() == 1 && c.args.len() == 1 && c.shared.len() == 1));
    let (keys, args) = encode(&mut calls, 1, Sent::Once);
    assert_eq!(keys, vec![Key::from("{a}k")]);
    assert_eq!(text(args), once);
    assert!(calls.iter().all(|c| c.keys.is_empty() && c.args.is_empty()));
    // Counts and shared arguments that differ go with each call.
    let mut calls = [
        call("{a}k", &["1"], &["s"]),
        call("{b}k", &["2", "3"], &["t"]),
    ];
    let (keys, args) = encode(&mut calls, 2, Sent::Once);
    assert_eq!(keys.len(), 2);
    let per_call = ["1", "1", "1", "1", "s", "1", "2", "1", "2", "3", "t"];
    assert_eq!(
        text(args),
        [&["2", "2", "-1", "-1", "-1", "-1"][..], &per_call].concat()
    );
    let mut calls = [call("{a}k", &["1"], &["s"]), call("{b}k", &["2"], &["t"])];
    let (_, args) = encode(&mut calls, 2, Sent::Once);
    assert_eq!(
        text(args),
        ["2", "2", "1", "1", "1", "-1", "1", "s", "2", "t"]
    );
}
