//! The event log: when AWS reached each state.

use super::*;

#[tokio::test]
async fn the_event_log_tells_when_aws_reached_each_state() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0.4, "ssm_online_seconds": 0.2}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let image = ec2.create_image().instance_id(&instance).name("logged").send().await.unwrap();
    let image = image.image_id().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(600)).await;
    ec2.terminate_instances().instance_ids(&instance).send().await.unwrap();

    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    let running = event_at(&events, &instance, "running").expect("running");
    let online = event_at(&events, &instance, "online").expect("online");
    let available = event_at(&events, &image, "image-available").expect("image-available");
    let terminated = event_at(&events, &instance, "terminated").expect("terminated");
    assert!((online - running - 0.2).abs() < 0.1, "{events}");
    assert!(available > online && available < terminated, "{events}");
    let times: Vec<f64> = events.as_array().unwrap().iter().map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {events}");
}
