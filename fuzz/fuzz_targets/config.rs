//! Configuration text as the broker loads it: the input is written as a TOML file and as a
//! `.properties` file and each goes through `config::load` (figment, flattening, aliases,
//! validation of every key, listeners, network settings); the properties parser also runs on
//! its own, its pairs validated directly. What loads is then used as start-up uses it
//! (retention, roll, topic defaults).

#![no_main]

use std::collections::BTreeMap;

use klamm::config::{self, properties, BrokerConfig, Sources};
use libfuzzer_sys::fuzz_target;

fn use_config(cfg: &BrokerConfig) {
    let _ = cfg.retention_ms();
    let _ = cfg.roll_ms();
    let _ = cfg.data_dir();
    let _ = cfg.node_id();
    let settings = klamm::topics::config::TopicSettings::resolve(&BTreeMap::new(), cfg);
    let _ = settings.log_config();
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: BTreeMap<String, String> = properties::parse(&text).into_iter().collect();
    if let Ok(cfg) = BrokerConfig::from_pairs(pairs) {
        use_config(&cfg);
    }
    let dir = klamm_fuzz::scratch_dir("config");
    for name in ["server.toml", "server.properties"] {
        let path = dir.join(name);
        std::fs::write(&path, data).expect("cannot write to the scratch directory");
        let sources = Sources {
            file: Some(path),
            overrides: Vec::new(),
            env: false,
        };
        if let Ok(cfg) = config::load(&sources) {
            use_config(&cfg);
        }
    }
});
