"""Named compute profiles of devices and servers: peak FLOP/s, the share of it a transformer
training step reaches, memory, and power.

Peak figures are FP32 (TF32 tensor cores where the chip trains in TF32 by default) from the
vendors' datasheets, each cited. `utilization` is the model-FLOPs utilization a fine-tuning step
reaches on that class of hardware; it is an assumption (small batches of short sequences on edge
hardware reach far less than datacenter MFU), stated here so a scenario can override it.
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
    description: str = ""

    @property
    def effective_flops(self) -> float:
        return self.peak_flops * self.utilization


PROFILES: dict[str, DeviceProfile] = {
    # Raspberry Pi 4 Model B, 4x Cortex-A72 @ 1.5 GHz: 4 cores x 1.5 GHz x 8 FP32 FLOP/cycle (2x 64-bit
    # NEON FMA pipes) = 48 GFLOP/s peak; ~6.4 W under full load, 2.7 W idle (Raspberry Pi 4 product
    # brief; power as measured by Tom's Hardware "Raspberry Pi 4 Power Consumption", 2019).
    "raspberry-pi-4": DeviceProfile(peak_flops=48e9, utilization=0.25, memory_bytes=4 * GIB, compute_power_w=6.4,
                                    idle_power_w=2.7, description="Raspberry Pi 4 B, 4 GB"),
    # NVIDIA Jetson Nano: 128 Maxwell CUDA cores @ 921 MHz = 236 GFLOP/s FP32 (472 GFLOP/s FP16, Jetson
    # Nano datasheet DA_09366), 4 GB shared LPDDR4, 10 W power mode.
    "jetson-nano": DeviceProfile(peak_flops=236e9, utilization=0.3, memory_bytes=4 * GIB, compute_power_w=10.0,
                                 idle_power_w=1.25, description="NVIDIA Jetson Nano 4 GB, 10 W mode"),
    # NVIDIA Jetson AGX Orin 64GB: 2048 Ampere CUDA cores @ 1.3 GHz = 5.3 TFLOP/s FP32 (Jetson AGX Orin
    # series datasheet DS-10662), 64 GB LPDDR5, 15-60 W (MAXN 60 W).
    "jetson-agx-orin": DeviceProfile(peak_flops=5.3e12, utilization=0.3, memory_bytes=64 * GIB,
                                     compute_power_w=60.0, idle_power_w=5.0,
                                     description="NVIDIA Jetson AGX Orin 64 GB, MAXN"),
    # Mid-range phone, Snapdragon 778G (Adreno 642L): ~0.5 TFLOP/s FP32 GPU (Qualcomm product brief,
    # 2021, figures as reported by NotebookCheck), 8 GB RAM, ~5 W sustained SoC power.
    "phone-midrange": DeviceProfile(peak_flops=0.5e12, utilization=0.2, memory_bytes=8 * GIB, compute_power_w=5.0,
                                    idle_power_w=0.5, description="mid-range phone, Snapdragon 778G class"),
    # Flagship phone, Snapdragon 8 Gen 2 (Adreno 740): ~3.5 TFLOP/s FP32 GPU (Qualcomm launch figures,
    # 2022, as reported by NotebookCheck), 12 GB RAM, ~8 W sustained SoC power.
    "phone-flagship": DeviceProfile(peak_flops=3.5e12, utilization=0.2, memory_bytes=12 * GIB,
                                    compute_power_w=8.0, idle_power_w=0.7,
                                    description="flagship phone, Snapdragon 8 Gen 2 class"),
    # Edge GPU server with an NVIDIA T4: 8.1 TFLOP/s FP32, 16 GB GDDR6, 70 W (T4 datasheet, 2019).
    "edge-t4": DeviceProfile(peak_flops=8.1e12, utilization=0.4, memory_bytes=16 * GIB, compute_power_w=70.0,
                             idle_power_w=10.0, description="edge server, NVIDIA T4"),
    # Edge GPU server with an NVIDIA A100 40GB: 156 TFLOP/s TF32 tensor (dense), 40 GB HBM2, 400 W
    # (A100 datasheet, 2020).
    "edge-a100": DeviceProfile(peak_flops=156e12, utilization=0.3, memory_bytes=40 * GIB, compute_power_w=400.0,
                               idle_power_w=50.0, description="edge server, NVIDIA A100 40 GB"),
    # Cloud GPU, NVIDIA H100 SXM5: 494.7 TFLOP/s TF32 tensor (dense), 80 GB HBM3, 700 W (H100 datasheet,
    # 2022).
    "cloud-h100": DeviceProfile(peak_flops=494.7e12, utilization=0.3, memory_bytes=80 * GIB,
                                compute_power_w=700.0, idle_power_w=70.0, description="cloud server, NVIDIA H100 SXM"),
}
