"""Named compute profiles of devices and servers: peak FLOP/s and memory bandwidth, the share of
each a transformer step reaches, memory, and power.

Peak figures are FP32 (TF32 tensor cores where the chip trains in TF32 by default) from the
vendors' datasheets, each cited. `utilization` is the model-FLOPs utilization a fine-tuning step
reaches on that class of hardware; it is an assumption (small batches of short sequences on edge
hardware reach far less than datacenter MFU), stated here so a scenario can override it.

`memory_bandwidth_bytes_per_s` is the datasheet's peak DRAM bandwidth (transfer rate × bus width),
and `memory_utilization` the share of it a step's unfused op-by-op traffic sustains — an
assumption like `utilization`: 0.5 for the LPDDR of SoCs (CPU and integrated-GPU STREAM-type
copies reach roughly half of peak), 0.8 for the GDDR/HBM of discrete GPUs. Together they time a
memory-bound step under the roofline model (`Node.step_duration_s`):
duration = max(FLOPs / (peak FLOP/s × utilization), bytes moved / (bandwidth × memory_utilization)).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

GIB = 1024**3


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    peak_flops: float = Field(gt=0, description="peak FP32/TF32 FLOP/s")
    utilization: float = Field(gt=0, le=1, description="share of peak a training step reaches")
    memory_bytes: float = Field(gt=0, description="memory available to the model (RAM or GPU memory)")
    compute_power_w: float = Field(ge=0, description="power drawn while computing")
    idle_power_w: float = Field(0.0, ge=0, description="power drawn while idle")
    memory_bandwidth_bytes_per_s: float | None = Field(
        None, gt=0, description="peak DRAM bandwidth (datasheet); null: steps are timed by FLOPs alone")
    memory_utilization: float = Field(0.5, gt=0, le=1, description="share of the bandwidth a step's traffic "
                                      "sustains")
    description: str = Field("", description="free text shown in tables")

    @property
    def effective_flops(self) -> float:
        return self.peak_flops * self.utilization

    @property
    def effective_bandwidth_bytes_per_s(self) -> float | None:
        """Bytes per second a step's memory traffic moves at; None without a bandwidth."""
        bw = self.memory_bandwidth_bytes_per_s
        return None if bw is None else bw * self.memory_utilization


PROFILES: dict[str, DeviceProfile] = {
    # Raspberry Pi 4 Model B, 4x Cortex-A72 @ 1.5 GHz: 4 cores x 1.5 GHz x 8 FP32 FLOP/cycle (2x 64-bit
    # NEON FMA pipes) = 48 GFLOP/s peak; ~6.4 W under full load, 2.7 W idle (Raspberry Pi 4 product
    # brief; power as measured by Tom's Hardware "Raspberry Pi 4 Power Consumption", 2019).
    # LPDDR4-3200 on a 32-bit bus (product brief; BCM2711): 3200 MT/s x 4 B = 12.8 GB/s.
    "raspberry-pi-4": DeviceProfile(peak_flops=48e9, utilization=0.25, memory_bytes=4 * GIB, compute_power_w=6.4,
                                    idle_power_w=2.7, memory_bandwidth_bytes_per_s=12.8e9,
                                    description="Raspberry Pi 4 B, 4 GB"),
    # Raspberry Pi 5, 4x Cortex-A76 @ 2.4 GHz (BCM2712, Raspberry Pi 5 product brief, 2023): 4 cores x
    # 2.4 GHz x 16 FP32 FLOP/cycle (2x 128-bit NEON FMA pipes) = 153.6 GFLOP/s peak; LPDDR4X-4267 on a
    # 32-bit bus: 4267 MT/s x 4 B = 17.1 GB/s; ~7 W under full load, 2.7 W idle (the 27 W supply's
    # brief gives the ceiling; load and idle as measured by Tom's Hardware's Raspberry Pi 5 review, 2023).
    "raspberry-pi-5": DeviceProfile(peak_flops=153.6e9, utilization=0.25, memory_bytes=8 * GIB, compute_power_w=7.0,
                                    idle_power_w=2.7, memory_bandwidth_bytes_per_s=17.1e9,
                                    description="Raspberry Pi 5, 8 GB"),
    # NVIDIA Jetson Nano: 128 Maxwell CUDA cores @ 921 MHz = 236 GFLOP/s FP32 (472 GFLOP/s FP16, Jetson
    # Nano datasheet DA_09366), 4 GB shared 64-bit LPDDR4 at 25.6 GB/s (same datasheet), 10 W power mode.
    "jetson-nano": DeviceProfile(peak_flops=236e9, utilization=0.3, memory_bytes=4 * GIB, compute_power_w=10.0,
                                 idle_power_w=1.25, memory_bandwidth_bytes_per_s=25.6e9,
                                 description="NVIDIA Jetson Nano 4 GB, 10 W mode"),
    # NVIDIA Jetson AGX Orin 64GB: 2048 Ampere CUDA cores @ 1.3 GHz = 5.3 TFLOP/s FP32 (Jetson AGX Orin
    # series datasheet DS-10662), 64 GB 256-bit LPDDR5 at 204.8 GB/s (same datasheet), 15-60 W (MAXN 60 W).
    "jetson-agx-orin": DeviceProfile(peak_flops=5.3e12, utilization=0.3, memory_bytes=64 * GIB,
                                     compute_power_w=60.0, idle_power_w=5.0, memory_bandwidth_bytes_per_s=204.8e9,
                                     description="NVIDIA Jetson AGX Orin 64 GB, MAXN"),
    # Mid-range phone, Snapdragon 778G (Adreno 642L): ~0.5 TFLOP/s FP32 GPU (Qualcomm product brief,
    # 2021, figures as reported by NotebookCheck), 8 GB RAM, ~5 W sustained SoC power; LPDDR5 up to
    # 3200 MHz (same brief) on a 4 x 16-bit bus: 6400 MT/s x 8 B = 51.2 GB/s.
    "phone-midrange": DeviceProfile(peak_flops=0.5e12, utilization=0.2, memory_bytes=8 * GIB, compute_power_w=5.0,
                                    idle_power_w=0.5, memory_bandwidth_bytes_per_s=51.2e9,
                                    description="mid-range phone, Snapdragon 778G class"),
    # Flagship phone, Snapdragon 8 Gen 2 (Adreno 740): ~3.5 TFLOP/s FP32 GPU (Qualcomm launch figures,
    # 2022, as reported by NotebookCheck), 12 GB RAM, ~8 W sustained SoC power; LPDDR5X up to 4200 MHz
    # (Qualcomm product brief) on a 4 x 16-bit bus: 8400 MT/s x 8 B = 67.2 GB/s.
    "phone-flagship": DeviceProfile(peak_flops=3.5e12, utilization=0.2, memory_bytes=12 * GIB,
                                    compute_power_w=8.0, idle_power_w=0.7, memory_bandwidth_bytes_per_s=67.2e9,
                                    description="flagship phone, Snapdragon 8 Gen 2 class"),
    # A phone's CPU, Snapdragon 855 (Pixel 4), the four big cores a 4-thread runtime uses: 1x Kryo 485
    # Prime @ 2.84 GHz + 3x Kryo 485 Gold @ 2.42 GHz (Cortex-A76 class, 16 FP32 FLOP/cycle with 2x 128-bit
    # NEON FMA) = (2.84 + 3 x 2.42) GHz x 16 = 161.6 GFLOP/s peak (Qualcomm Snapdragon 855 product brief,
    # 2018); LPDDR4X-2133 MHz on a 4 x 16-bit bus: 4266 MT/s x 8 B = 34.1 GB/s; 6 GB RAM (Pixel 4);
    # ~5 W with the big cores loaded (an assumption, as for the phone GPUs). Utilization 0.25: the same
    # assumption as the other CPU profile (raspberry-pi-4), not fitted to a measurement.
    "phone-cpu": DeviceProfile(peak_flops=161.6e9, utilization=0.25, memory_bytes=6 * GIB, compute_power_w=5.0,
                               idle_power_w=0.5, memory_bandwidth_bytes_per_s=34.1e9,
                               description="phone CPU, Snapdragon 855 (Pixel 4) big cores, 4 threads"),
    # Edge GPU server with an NVIDIA T4: 8.1 TFLOP/s FP32, 16 GB GDDR6 at 320 GB/s, 70 W (T4 datasheet, 2019).
    "edge-t4": DeviceProfile(peak_flops=8.1e12, utilization=0.4, memory_bytes=16 * GIB, compute_power_w=70.0,
                             idle_power_w=10.0, memory_bandwidth_bytes_per_s=320e9, memory_utilization=0.8,
                             description="edge server, NVIDIA T4"),
    # Edge GPU server with an NVIDIA A100 40GB: 156 TFLOP/s TF32 tensor (dense), 40 GB HBM2 at 1,555 GB/s,
    # 400 W (A100 datasheet, 2020).
    "edge-a100": DeviceProfile(peak_flops=156e12, utilization=0.3, memory_bytes=40 * GIB, compute_power_w=400.0,
                               idle_power_w=50.0, memory_bandwidth_bytes_per_s=1555e9, memory_utilization=0.8,
                               description="edge server, NVIDIA A100 40 GB"),
    # Cloud GPU, NVIDIA H100 SXM5: 494.7 TFLOP/s TF32 tensor (dense), 80 GB HBM3 at 3.35 TB/s, 700 W (H100
    # datasheet, 2022).
    "cloud-h100": DeviceProfile(peak_flops=494.7e12, utilization=0.3, memory_bytes=80 * GIB,
                                compute_power_w=700.0, idle_power_w=70.0, memory_bandwidth_bytes_per_s=3.35e12,
                                memory_utilization=0.8, description="cloud server, NVIDIA H100 SXM"),
}
