"""Cost of the Mixer's source conditioning (speech high-pass + offsets), paid once per Mixer.

    python bench/source_conditioning.py --config configs/crn.yaml
"""
import argparse
import time

from specdenoise import config as config_io
from specdenoise.data.mixing import condition_sources
from specdenoise.training.config import TrainConfig
from specdenoise.training.trainer import dynamic_mix_pools

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/crn.yaml")
    args = parser.parse_args()
    cfg = config_io.load(TrainConfig, args.config)
    pools, _, mix = dynamic_mix_pools(cfg, 16000, with_validation=False)
    hours = (sum(map(len, pools.speech)) + sum(map(len, pools.noise))) / mix.sample_rate / 3600
    start = time.perf_counter()
    condition_sources(pools, mix)
    print(f"conditioned {len(pools.speech)} speech + {len(pools.noise)} noise files ({hours:.2f} h) "
          f"in {time.perf_counter() - start:.2f} s")
