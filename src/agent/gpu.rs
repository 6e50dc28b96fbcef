//! The GPU agent: NVML samples as OTLP metrics following the OpenTelemetry hardware
//! conventions (`hw.gpu.memory.usage`, `hw.gpu.memory.limit`, `hw.gpu.utilization`, …), so
//! the shipped `gpu_memory_pressure` detector reads them like DCGM's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::Destination;
use crate::decode::string_attribute as text;
use crate::error::{Error, Result};

/// One GPU's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSample {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Percent of time a kernel ran, 0..100.
    pub utilization_percent: Option<u32>,
    pub temperature_celsius: Option<u32>,
    pub power_milliwatts: Option<u32>,
    /// The SM clock now, MHz: below its peers' under the same load, the GPU throttles
    /// (thermal or power).
    pub sm_clock_mhz: Option<u32>,
    /// Uncorrected ECC errors since the driver loaded.
    pub ecc_uncorrected: Option<u64>,
    /// `(pid, bytes)` of processes using the GPU.
    pub processes: Vec<(u32, u64)>,
}

/// Reads every GPU. An unsupported reading (e.g. ECC on consumer boards) is left out.
pub fn read(nvml: &Nvml) -> Result<Vec<GpuSample>> {
    let nvml_err =
        |what: &str, e: nvml_wrapper::error::NvmlError| Error::Agent(format!("NVML {what}: {e}"));
    let count = nvml
        .device_count()
        .map_err(|e| nvml_err("device count", e))?;
    let mut out = Vec::new();
    for index in 0..count {
        let d = nvml
            .device_by_index(index)
            .map_err(|e| nvml_err("device", e))?;
        let memory = d.memory_info().map_err(|e| nvml_err("memory info", e))?;
        out.push(GpuSample {
            index,
            uuid: d.uuid().unwrap_or_default(),
            name: d.name().unwrap_or_default(),
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
            utilization_percent: d.utilization_rates().ok().map(|u| u.gpu),
            temperature_celsius: d.temperature(TemperatureSensor::Gpu).ok(),
            power_milliwatts: d.power_usage().ok(),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            ecc_uncorrected: d
                .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .ok(),
            processes: d
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some((p.pid, b)),
                    UsedGpuMemory::Unavailable => None,
                })
                .collect(),
        });
    }
    Ok(out)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// The samples as one OTLP export request (gauges), stamped `time_ns`.
pub fn to_otlp(samples: &[GpuSample], host: &str, time_ns: u64) -> ExportMetricsServiceRequest {
    let mut metrics: Vec<(&str, &str, Vec<NumberDataPoint>)> = vec![
        ("hw.gpu.memory.usage", "By", Vec::new()),
        ("hw.gpu.memory.limit", "By", Vec::new()),
        ("hw.gpu.utilization", "1", Vec::new()),
        ("hw.temperature", "Cel", Vec::new()),
        ("hw.power", "W", Vec::new()),
        ("hw.errors", "{error}", Vec::new()),
        ("hw.gpu.process.memory.usage", "By", Vec::new()),
        ("hw.gpu.clock.sm", "MHz", Vec::new()),
    ];
    for s in samples {
        let gpu = [
            text("hw.id", &format!("gpu{}", s.index)),
            text("gpu", &s.index.to_string()),
            text("UUID", &s.uuid),
            text("hw.name", &s.name),
            text("hw.type", "gpu"),
        ];
        let point = |value: f64, extra: Vec<KeyValue>| NumberDataPoint {
            attributes: gpu.iter().cloned().chain(extra).collect(),
            time_unix_nano: time_ns,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        };
        metrics[0].2.push(point(s.memory_used_bytes as f64, vec![]));
        metrics[1]
            .2
            .push(point(s.memory_total_bytes as f64, vec![]));
        if let Some(u) = s.utilization_percent {
            metrics[2].2.push(point(f64::from(u) / 100.0, vec![]));
        }
        if let Some(t) = s.temperature_celsius {
            metrics[3].2.push(point(f64::from(t), vec![]));
        }
        if let Some(p) = s.power_milliwatts {
            metrics[4].2.push(point(f64::from(p) / 1000.0, vec![]));
        }
        if let Some(e) = s.ecc_uncorrected {
            metrics[5]
                .2
                .push(point(e as f64, vec![text("error.type", "ecc_uncorrected")]));
        }
        if let Some(mhz) = s.sm_clock_mhz {
            metrics[7].2.push(point(f64::from(mhz), vec![]));
        }
        for (pid, bytes) in &s.processes {
            let pid = kv("process.pid", any_value::Value::IntValue(i64::from(*pid)));
            metrics[6].2.push(point(*bytes as f64, vec![pid]));
        }
    }
    let metrics = metrics
        .into_iter()
        .filter(|(_, _, points)| !points.is_empty())
        .map(|(name, unit, points)| Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        })
        .collect();
    request(metrics, host)
}

/// One export request of the agent's resource and scope.
fn request(metrics: Vec<Metric>, host: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "faultline-gpu-agent"),
                    text("host.name", host),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "faultline.agent.gpu".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Samples every `interval` (`count` times, or until the process is stopped) and writes.
pub async fn run(dest: &mut Destination, interval: Duration, count: Option<u64>) -> Result<()> {
    let nvml = Nvml::init().map_err(|e| {
        Error::Agent(format!(
            "cannot load NVML ({e}); the GPU agent needs an NVIDIA driver (libnvidia-ml.so)"
        ))
    })?;
    let host = hostname();
    let mut tick = tokio::time::interval(interval);
    let mut n = 0;
    while count.is_none_or(|c| n < c) {
        tick.tick().await;
        let samples = read(&nvml)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let req = to_otlp(&samples, &host, now);
        dest.write(&host, &req).await?;
        n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::decode::{Decoder, MessageContext};
    use crate::model::{Record, Signal};

    #[test]
    fn samples_become_hardware_convention_metrics_the_pipeline_reads() {
        let s = GpuSample {
            index: 1,
            uuid: "GPU-abc".into(),
            name: "NVIDIA H200".into(),
            memory_used_bytes: 96 << 30,
            memory_total_bytes: 141 << 30,
            utilization_percent: Some(87),
            temperature_celsius: Some(61),
            power_milliwatts: Some(512_000),
            sm_clock_mhz: Some(1980),
            ecc_uncorrected: None,
            processes: vec![(4242, 90 << 30)],
        };
        let req = to_otlp(&[s], "gpu-node-7", 1_700_000_000_000_000_000);
        // Through the pipeline's own decoder, as protobuf (Kafka) and as OTLP/JSON (file).
        let proto = Decoder::new(1 << 20)
            .decode(
                &req.encode_to_vec(),
                MessageContext {
                    signal: Some(Signal::Metrics),
                    ..Default::default()
                },
            )
            .unwrap();
        let json = Decoder::new(1 << 20)
            .decode(
                serde_json::to_string(&req).unwrap().as_bytes(),
                MessageContext::default(),
            )
            .unwrap();
        assert_eq!(proto, json);
        let points: Vec<(String, f64, String, String)> = proto
            .iter()
            .map(|r| match r {
                Record::Metric(m) => (
                    m.name.clone(),
                    m.value.unwrap(),
                    m.attributes["hw.id"].clone(),
                    m.resource.host.clone().unwrap(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        let names: Vec<&str> = points.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "hw.gpu.memory.usage",
                "hw.gpu.memory.limit",
                "hw.gpu.utilization",
                "hw.temperature",
                "hw.power",
                "hw.gpu.process.memory.usage",
                "hw.gpu.clock.sm"
            ]
        );
        assert_eq!(points[0].1, (96u64 << 30) as f64);
        assert_eq!(points[2].1, 0.87);
        assert_eq!(points[4].1, 512.0);
        assert_eq!(points[6].1, 1980.0);
        assert!(points.iter().all(|p| p.2 == "gpu1" && p.3 == "gpu-node-7"));
    }
}
