//! Integration tests of the spine: the real application on port 0 with its embedded broker (or the
//! machine's Mosquitto), real MQTT publishes with rumqttc and the live websocket with tokio-tungstenite.

mod helpers;

mod auth;
mod bad_input;
mod bench_smoke;
mod case_e2e;
mod cases;
mod components;
mod devices_api;
mod embedded_link;
mod gis_api;
mod grid;
mod incidents_api;
mod inspectors;
mod mosquitto;
mod mqtt_to_ws;
mod openapi;
mod replay;
mod restart;
mod sensor_cases;
mod slow_client;
mod tidy;
