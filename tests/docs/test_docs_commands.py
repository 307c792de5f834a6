"""Every shell command in README.md and docs/*.md runs here, or is parsed, or names the test that runs it.

How a command is checked is its spec in ``SPECS`` (kinds in ``doc_harness``); docs/docs_tests.md explains the
convention. A command without a spec, or a spec whose command left the docs, fails the suite.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs.doc_harness import (
    REPO_ROOT,
    Covered,
    DocCommand,
    MakeDryRun,
    Parse,
    Run,
    build_sandbox,
    compose_train_command,
    doc_commands,
    named_test_exists,
    parse_python_command,
    run_bash,
    run_python_in_process,
    sandbox_env,
    untagged_command_fences,
)

# Shrinks a train.py command to the tiny CPU model (appended Hydra overrides win over the command's own).
TINY_CPU = "model=tiny trainer=cpu logger=none debug=ci data.batch_size=2 data.num_workers=0"
TINY_TRAIN = f"{TINY_CPU} demo.num_songs=4 demo.song_seconds=[3.0,4.0] demo.generate_seconds=1.0"
# The Japanese LoRA recipe on the tutorial's tiny shards (the sandbox's release folder holds a tiny model).
TINY_LORA = f"{TINY_CPU} data.max_frames=64"
DEMO = "python train.py"
EVAL_DEMO = (
    "python scripts/evaluate.py --run-dir outputs/runs/demo-* --out reports/demo --embedder mel --seconds 2 --seeds 0"
)
JA_CONVERT = "python scripts/convert_jacappella.py data/jaCappella --out data/ja/songs.jsonl"
JA_LYRICS = (
    "python -c \"import json; [print(r['lyrics']) for r in map(json.loads, open('data/ja/songs.jsonl'))]\" "
    "> data/ja/lyrics.txt"
)
JA_REQUESTS = (
    "python -c \"import json; [print(json.dumps({'idx': r['idx'], 'lyrics': r['lyrics'], "
    "'prompt_wav': r['audio_path']}, ensure_ascii=False)) for r in map(json.loads, open('data/ja/songs.jsonl'))]\" "
    "> data/ja/requests.jsonl"
)
JA_RECOVER = (
    "python -m songbloom.sketch recover --base ckpts/songbloom_full_150s --requests data/ja/requests.jsonl "
    "--songs-per-request 8 --layers 6 9 12 --no-corpus-audio --heldout data/ja/songs.jsonl "
    "--work-dir work/recover_150s --out codebooks/recovered_150s.safetensors --dtype bfloat16 --device cuda"
)
# The recovery on the tiny stand-ins: a tiny random MuQ (3 hidden states), 2 songs of 2 s per request, 2 DiT steps.
TINY_RECOVER = (
    "--tiny-muq-seed 0 --device cpu --dtype float32 --songs-per-request 2 --layers 1 2 --max-duration 2 --steps 2 "
    "--no-progress"
)
RECOVERED_INFO = "python -m songbloom.sketch info --codebook codebooks/recovered_150s.safetensors"
JA_CODEBOOK = (
    "python -m songbloom.sketch train --manifest data/ja/songs.jsonl --num-codes 16384 --num-pitch 16384 "
    "--device cuda --work-dir work/sketch_ja --out codebooks/ja_16384.safetensors"
)
JA_SHARDS = (
    "python scripts/preprocess.py data/ja/songs.jsonl --out data/ja/shards "
    "--vae-config ckpts/songbloom_full_150s/stable_audio_1920_vae.json "
    "--vae-ckpt ckpts/songbloom_full_150s/autoencoder_music_dsp1920.ckpt "
    "--codebook codebooks/recovered_150s.safetensors --num-pitch 16384 --device cuda"
)
JA_TRAIN = (
    "python train.py experiment=japanese_lora init.release_dir=ckpts/songbloom_full_150s "
    "data.manifest=data/ja/songs.jsonl data.shards_dir=data/ja/shards "
    "sketch.codebook_path=codebooks/recovered_150s.safetensors run_name=ja-lora"
)
JA_EXPORT = (
    "python scripts/export.py export outputs/runs/ja-lora/checkpoints/last.ckpt --out exports/ja-lora "
    "--base-ckpt ckpts/songbloom_full_150s"
)
JA_PROMPT = (
    "printf '%s\\n' '{\"idx\": \"ja_test\", "
    "\"lyrics\": \"[verse] かえるの うたが きこえて くるよ , [chorus] さくら さくら\", "
    '"prompt_wav": "data/jaCappella/pops/song_1/mixture.wav"}\' > ja_test.jsonl'
)
JA_INFER = (
    "python infer.py --input-jsonl ja_test.jsonl --ckpt-path outputs/runs/ja-lora/export/release "
    "--output-dir out/ja-lora --dtype bfloat16 --seed 0"
)
JA_EVAL = (
    "python scripts/evaluate.py --run-dir outputs/runs/ja-lora --out reports/ja-lora "
    "--vae ckpts/songbloom_full_150s/autoencoder_music_dsp1920.ckpt --device cuda"
)
# Generation on CPU in seconds: one float32 song of 2 s, few DiT steps.
TINY_INFER = "--dtype float32 --device cpu --max-duration 2 --steps 4 --n-samples 1"
GPU = "needs a GPU and the release weights"
RECOVER_GPU = "a GPU job on the release weights; the tutorial's recover step runs the same command tiny"
MIGRATION = Covered(
    "tests/docs/test_migration_page.py::test_every_command_of_the_migration_page_runs",
    "the migration page's own test builds a fork checkpoint and a jaCappella copy",
)
NET = "downloads released weights"

SPECS: dict[str, Run | Parse | Covered | MakeDryRun] = {
    # --- getting started / README
    "python -m songbloom.plan experiment=full_finetune memory=lora_150s_24gb": Covered(
        "tests/plan/test_plan_cli.py::test_table_names_every_component_and_the_total",
        "the plan probes the full-size blocks on the CPU (tens of seconds); the CLI test runs it on the tiny preset",
    ),
    "make demo": Covered("tests/training/test_demo.py::test_demo_builds_data_trains_and_generates", "the demo"),
    "make test": MakeDryRun(expect="pytest"),
    DEMO: Run(append=TINY_TRAIN, expect_output="song        :"),
    "ls outputs/runs/demo-*/": Run(after=(DEMO,), expect_output="metrics.jsonl"),
    EVAL_DEMO: Run(append="--max-batches 1", after=(DEMO,), timeout=400),
    "python infer.py --input-jsonl my_songs.jsonl --output-dir out --model-name songbloom_full_150s "
    "--local-dir ckpts/songbloom_full_150s": Parse(NET),
    "python scripts/convert_folder.py data/my_songs --out data/my_songs.jsonl --language en": Run(),
    "python -m songbloom.sketch train --manifest data/my_songs.jsonl --num-codes 16384 --num-pitch 16384 "
    "--device cuda --work-dir work/sketch_en --out codebooks/en_16384.safetensors": Parse(
        "GPU + MuQ weights; the tutorial's codebook step runs tiny"
    ),
    "python scripts/preprocess.py data/my_songs.jsonl --out data/my_shards "
    "--vae-config ckpts/songbloom_full_150s/stable_audio_1920_vae.json "
    "--vae-ckpt ckpts/songbloom_full_150s/autoencoder_music_dsp1920.ckpt "
    "--codebook codebooks/en_16384.safetensors --num-pitch 16384 --val-fraction 0.05 --device cuda": Parse(
        "GPU + a 16384-code codebook; the tutorial's shard step runs tiny"
    ),
    "python train.py experiment=japanese_lora text.language=en init.release_dir=ckpts/songbloom_full_150s "
    "data.manifest=data/my_songs.jsonl data.shards_dir=data/my_shards "
    "sketch.codebook_path=codebooks/en_16384.safetensors run_name=my-first-lora": Parse(GPU),
    "python scripts/convert_folder.py --help": Run(),
    "python -m songbloom.text lyrics.txt --json": Run(expect_output='"ids"'),
    "python -m songbloom.sketch train --help": Run(),
    "python -m songbloom.sketch recover --help": Run(),
    "python scripts/preprocess.py --help": Run(),
    "python train.py experiment=full_finetune trainer=ddp trainer.devices=8": Parse("8 GPUs"),
    "python infer.py --input-jsonl example/test.jsonl --output-dir out --model-name songbloom_full_150s "
    "--local-dir ckpts": Parse(NET),
    "python infer.py --input-jsonl my.jsonl --ckpt-path exports/ja-lora/release --dtype bfloat16": Parse(
        "needs an exported release directory; the tutorial's listen step generates from one"
    ),
    "python scripts/slurm/render.py lora_1gpu": Run(expect_output="#SBATCH --requeue"),
    # --- data
    "python scripts/convert_folder.py data/my_songs --out data/my_songs.jsonl --language en --license "
    '"CC-BY-4.0"': Run(expect_output=""),
    "python scripts/convert_jacappella.py data/jaCappella --out data/ja/songs.jsonl --audio-type lead_vocal": Run(),
    "python scripts/convert_kiritan.py data/kiritan --out data/kiritan.jsonl": Run(),
    "python scripts/convert_asr.py data/unlabelled --model models/whisper-large-v3 --out data/asr.jsonl "
    "--language ja": Covered(
        "tests/data/test_asr.py::test_tiny_random_whisper_runs_and_every_file_is_accounted_for",
        "a Whisper model (the test uses a tiny random one; a CLI run costs ~40 s)",
    ),
    "python scripts/make_synthetic_dataset.py --out data/synthetic --num-songs 8 --min-seconds 4 "
    "--max-seconds 6": Run(),
    JA_LYRICS: Run(after=(JA_CONVERT,)),
    "python -m songbloom.text data/ja/lyrics.txt --json --language ja --check-format": Run(after=(JA_LYRICS,)),
    "python scripts/preprocess.py data/my_songs.jsonl --out data/shards "
    "--vae-config ckpts/songbloom_full_150s/stable_audio_1920_vae.json "
    "--vae-ckpt ckpts/songbloom_full_150s/autoencoder_music_dsp1920.ckpt "
    "--codebook codebooks/en_16384.safetensors --model full_150s --val-fraction 0.02 --workers 2": Parse(
        "needs the release VAE and a 16384-code codebook; the tutorial's shard step runs tiny"
    ),
    "python scripts/preprocess.py --out data/shards --verify data/my_songs.jsonl": Parse(
        "verifies the shards of the command above"
    ),
    # --- lyrics
    "python -m songbloom.text lyrics.txt": Run(expect_output="phonemes"),
    "python -m songbloom.text lyrics.txt --language ja --max-len 1000 --check-format": Run(),
    # --- sketch tokens
    "python -m songbloom.sketch train --manifest data/train.jsonl --num-codes 16384 --num-pitch 16384 "
    "--muq OpenMuQ/MuQ-large-msd-iter --layer -1 --device cuda --work-dir runs/sketch_vq "
    "--out artifacts/sketch_16384.safetensors": Parse("GPU + MuQ weights; the tutorial's codebook step runs tiny"),
    # --- Japanese LoRA tutorial (runs end to end on tiny stand-ins)
    "hf download CypressYang/SongBloom songbloom_full_150s.yaml songbloom_full_150s.pt stable_audio_1920_vae.json "
    "autoencoder_music_dsp1920.ckpt vocab_g2p.yaml --local-dir ckpts/songbloom_full_150s": Parse(
        NET + " (the sandbox holds tiny stand-ins with the release names)"
    ),
    JA_CONVERT: Run(),
    "python -m songbloom.text data/ja/lyrics.txt --language ja --check-format": Run(after=(JA_LYRICS,)),
    JA_CODEBOOK: Run(
        append="--num-codes 64 --num-pitch 64 --tiny-muq-seed 0 --device cpu --epochs 1 --no-progress",
        after=(JA_CONVERT,),
        expect_output="codes_used",
    ),
    JA_REQUESTS: Run(after=(JA_CONVERT,)),
    JA_RECOVER: Run(append=TINY_RECOVER, after=(JA_REQUESTS,), expect_output="verdict:"),
    RECOVERED_INFO: Run(after=(JA_RECOVER,), expect_output="recovered from"),
    JA_SHARDS: Run(append="--num-pitch 64 --device cpu --no-progress", after=(JA_RECOVER,)),
    "python scripts/preprocess.py --out data/ja/shards --verify": Run(
        after=(JA_SHARDS,), expect_output='"ok": true'
    ),
    JA_TRAIN: Run(append=TINY_LORA, after=(JA_SHARDS,), expect_output="export      :"),
    JA_TRAIN.replace("run_name=ja-lora", "run_name=ja-lora-r32")
    + " lora.rank=32 lora.alpha=64 lora.base_dtype=bf16 trainer.max_steps=2000": Parse(
        GPU + "; the command above runs tiny"
    ),
    JA_EXPORT: Run(after=(JA_TRAIN,), expect_output="exports/ja-lora/release"),
    JA_PROMPT: Run(),
    JA_INFER: Run(append=TINY_INFER, after=(JA_TRAIN, JA_PROMPT), expect_output="1 song(s) written"),
    JA_EVAL: Run(append="--embedder mel --seconds 2 --device cpu", after=(JA_TRAIN,), timeout=400),
    # --- export
    "python infer.py --input-jsonl ja_test.jsonl --ckpt-path exports/ja-lora/release --output-dir out/ja-lora "
    "--dtype bfloat16 --seed 0": Covered(
        "tests/checkpoints/formats/test_export_formats.py::test_infer_cli_with_every_format",
        "infer.py on every export format (the tutorial's listen step runs infer.py on the run's own export)",
    ),
    "python scripts/export.py merge --adapter exports/ja-lora/peft_adapter --strength 0.5 --out exports/ja-lora-half "
    "--base-ckpt ckpts/songbloom_full_150s": Covered(
        "tests/checkpoints/formats/test_export_formats.py::test_merge_strength",
        "merging at a strength (a CLI run costs ~35 s)",
    ),
    # --- training
    JA_TRAIN.replace(" run_name=ja-lora", ""): Parse(GPU + "; the tutorial's train step runs tiny"),
    "python train.py experiment=full_finetune data.shards_dir=data/shards": Parse(GPU),
    "python train.py experiment=japanese_lora 'lora.targets=[lm_attn,lm_mlp]'": Parse(GPU),
    "python train.py debug=overfit": Parse("300 steps (minutes on CPU); the demo runs the same pipeline"),
    # --- inference
    "python infer.py --input-jsonl example/test.jsonl --output-dir out --model-name songbloom_full_150s "
    "--local-dir ./cache": Parse(NET),
    "python infer.py --input-jsonl jobs.jsonl --ckpt-path runs/my_model/songbloom.pt --dtype bfloat16 "
    "--batch-size 4 --seed 7": Covered(
        "tests/cli/test_infer.py::test_pt_path_bad_items_and_formats", "a release-format .pt"
    ),
    # --- evaluation
    "python scripts/evaluate.py --out reports/ft_vs_base --audio base=gen/base --audio finetuned=gen/ft "
    "--reference data/ref_songs --prompts prompts.jsonl --mulan OpenMuQ/MuQ-MuLan-large "
    "--asr /models/whisper-large-v3": Covered(
        "tests/eval/test_report_and_cli.py::test_cli_on_folders_with_tiny_muq_and_mulan", "MuQ-MuLan + ASR weights"
    ),
    "python scripts/evaluate.py --out reports/x --export base=runs/a/export --export finetuned=runs/b/export "
    "--held-out held_out.pt --prompts prompts.jsonl --seeds 0 1 2 --vae /ckpt/vae.ckpt": Covered(
        "tests/eval/test_report_and_cli.py::test_cli_on_two_exports_gives_teacher_forced_metrics", "two exports"
    ),
    "python scripts/evaluate.py --run-dir outputs/runs/demo-* --out reports/demo "
    "--muq models/tiny_muq --mulan models/tiny_mulan/mulan --seconds 4 --seeds 0 1": Covered(
        "tests/eval/test_report_and_cli.py::test_cli_on_folders_with_tiny_muq_and_mulan",
        "tiny MuQ-MuLan (the run-dir report itself runs above with --embedder mel)",
    ),
    # --- sketch-id recovery (docs/sketch_recovery.md)
    "python -m songbloom.sketch recover --base ckpts/songbloom_full_150s --requests data/recover/requests.jsonl "
    "--songs-per-request 8 --layers 6 9 12 --no-corpus-audio --heldout data/ja/songs.jsonl "
    "--work-dir work/recover_150s --out codebooks/recovered_150s.safetensors --dtype bfloat16 --device cuda": Parse(
        RECOVER_GPU
    ),
    "python -m songbloom.sketch recover --stage generate --task-index 0 --num-tasks 8 "
    "--base ckpts/songbloom_full_150s --requests data/recover/requests.jsonl --songs-per-request 8 "
    "--layers 6 9 12 --work-dir work/recover_150s": Parse(RECOVER_GPU),
    "python -m songbloom.sketch recover --stage fit --work-dir work/recover_150s "
    "--out codebooks/recovered_150s.safetensors --calibration-songs data/ja/songs.jsonl": Parse(
        "needs a finished corpus (the tutorial's recover step fits one)"
    ),
    "python scripts/slurm/submit_recover.py --num-tasks 8 --set partition=gpu --submit -- "
    "--base ckpts/songbloom_full_150s --requests data/recover/requests.jsonl --songs-per-request 8 "
    "--layers 6 9 12 --no-corpus-audio --heldout data/ja/songs.jsonl --work-dir work/recover_150s "
    "--out codebooks/recovered_150s.safetensors --dtype bfloat16 --device cuda": Covered(
        "tests/slurm/test_recover_slurm.py::test_submit_puts_the_fit_after_the_whole_array",
        "a SLURM cluster (the test submits with a stub sbatch; the cluster test runs the pair on the tiny world)",
    ),
    # --- configuration reference, docs tests
    "python scripts/gen_config_reference.py --check": Run(expect_output="up to date"),
    "python -m pytest tests/docs -q": Covered("tests/docs/test_docs_commands.py::test_doc_page_commands", "this suite"),
    # --- migration.md: its own test runs every command of the page on tiny stand-ins
    "python infer.py --input-jsonl my_songs.jsonl --ckpt-path checkpoints/last.ckpt --output-dir out": MIGRATION,
    "python infer.py --input-jsonl my_songs.jsonl --ckpt-path checkpoints/last.ckpt --output-dir out --use-lora "
    "--lora-rank 16 --lora-alpha 32 --lora-target-modules q_proj,v_proj": MIGRATION,
    "python scripts/convert_fork_checkpoint.py checkpoints/last.ckpt exports/ja_lora --name ja_lora": MIGRATION,
    "python infer.py --input-jsonl my_songs.jsonl --ckpt-path exports/ja_lora --output-dir out": MIGRATION,
    "python scripts/convert_jacappella.py data/jaCappella --download --hf-token $HF_TOKEN "
    "--out data/ja/songs.jsonl": MIGRATION,
    "python infer.py --input-jsonl my_songs.jsonl --ckpt-path exports/ja_lora --output-dir out --device mps": MIGRATION,
    "python train.py trainer=mps": MIGRATION,
    # --- SLURM (sbatch is a stub in the sandbox that checks the rendered script)
    "python scripts/slurm/render.py lora_1gpu --set partition=gpu --check -o lora.sbatch && sbatch lora.sbatch": Run(
        expect_output="Submitted batch job"
    ),
    "python scripts/slurm/render.py full_8gpu --set partition=a100 --check -o full.sbatch && sbatch full.sbatch": Run(
        expect_output="Submitted batch job"
    ),
    "python scripts/slurm/render.py full_8gpu_fsdp --set partition=a6000 --check -o full.sbatch": Run(),
    "python scripts/slurm/render.py multinode --set partition=a100 --check -o multi.sbatch && sbatch multi.sbatch": Run(
        expect_output="Submitted batch job"
    ),
    "python scripts/slurm/render.py preprocess_array --set num_tasks=16 --set max_parallel=8 -o prep.sbatch "
    "&& sbatch prep.sbatch": Run(expect_output="Submitted batch job"),
    "python train.py -m hydra/launcher=submitit_slurm experiment=full_finetune trainer=ddp "
    "trainer.devices=8 hydra.launcher.partition=a100 hydra.launcher.timeout_min=2880": Covered(
        "tests/slurm/test_scale_out_config.py::test_submitit_launcher_composes_and_renders", "a SLURM cluster"
    ),
    "scripts/slurm/local_cluster.sh start": Covered(
        "tests/slurm/test_slurm_jobs.py::test_ddp_job_two_ranks_to_completion", "root + SLURM daemons (CI)"
    ),
    "export SONGBLOOM_SLURM_CONF=/tmp/songbloom-slurm/slurm.conf SLURM_CONF=$SONGBLOOM_SLURM_CONF": Covered(
        "tests/slurm/test_slurm_jobs.py::test_usr1_requeues_and_resumes", "the local cluster (CI)"
    ),
    "python -m pytest tests/slurm -q": Covered(
        "tests/slurm/test_slurm_jobs.py::test_preprocessing_array_job", "the local cluster (CI)"
    ),
    "scripts/slurm/local_cluster.sh stop": Covered(
        "tests/slurm/test_slurm_jobs.py::test_task_layout_mismatch_fails_with_the_sbatch_line", "the local cluster"
    ),
}


def _norm(text: str) -> str:
    return " ".join(text.split())


NORM_SPECS = {_norm(k): v for k, v in SPECS.items()}
COMMANDS = doc_commands()
PAGES = sorted({c.path for c in COMMANDS}, key=lambda p: (p.name != "README.md", p.name))


def test_every_doc_command_has_a_spec():
    missing = [f"{c.where}: {c.key}" for c in COMMANDS if c.key not in NORM_SPECS]
    assert not missing, "commands in the docs without a spec in tests/docs/test_docs_commands.py SPECS:\n" + "\n".join(
        missing
    )


def test_no_spec_without_a_doc_command():
    present = {c.key for c in COMMANDS}
    stale = [k for k in NORM_SPECS if k not in present]
    assert not stale, "specs whose command is no longer in the docs (remove or update them):\n" + "\n".join(stale)


def test_shell_blocks_are_tagged_bash():
    assert not untagged_command_fences(), "fences that hold commands but are not ```bash: " + ", ".join(
        untagged_command_fences()
    )


def test_covered_commands_name_existing_tests():
    for key, spec in NORM_SPECS.items():
        if isinstance(spec, Covered):
            assert named_test_exists(spec.test), f"{key!r} is said to be covered by {spec.test}, which does not exist"


class Runner:
    """Runs ``Run`` commands in the sandbox once each (dependencies first) and keeps their output.

    Commands run in worker threads, so independent chains (the demo and the tutorial) progress side by side:
    ``prefetch`` starts a chain early, ``run`` waits for a command (starting it when nobody has).
    """

    def __init__(self, sandbox: Path):
        self.sandbox = sandbox
        self.seconds: dict[str, float] = {}
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="doc-cmd")

    def prefetch(self, key: str) -> Future:
        key = _norm(key)
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(self._execute, key)
            return self._futures[key]

    def run(self, key: str) -> str:
        return self.prefetch(key).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _execute(self, key: str) -> str:
        spec = NORM_SPECS[key]
        assert isinstance(spec, Run), f"{key!r} is a dependency, so it must be a Run spec"
        for dep in spec.after:
            self.run(dep)
        text = next(c.text for c in COMMANDS if c.key == key)
        executed = f"{text} {spec.append}".strip() if "&&" not in text else text
        if executed.startswith("python ") and executed.endswith(" --help"):
            # Help exits inside parse_args: run it in this process (no new interpreter + torch import).
            with self._lock:  # sys.argv and stdout are process-wide
                code, output = run_python_in_process(executed, stop_after_parse=False)
            assert code == 0 and "usage:" in output, f"{executed}: exit {code}\n{output[-3000:]}"
            return output
        start = time.monotonic()
        proc = run_bash(executed, self.sandbox, sandbox_env(self.sandbox, spec.env), spec.timeout)
        self.seconds[key] = time.monotonic() - start
        output = proc.stdout + proc.stderr
        assert proc.returncode == spec.expect_rc, (
            f"doc command failed (exit {proc.returncode}, expected {spec.expect_rc}):\n  {executed}\n"
            f"--- output (tail) ---\n{output[-4000:]}"
        )
        if spec.expect_output is not None:
            assert spec.expect_output in output, f"{executed}\nexpected {spec.expect_output!r} in:\n{output[-3000:]}"
        return output


# The two long chains, started together when the sandbox is built (each waits for its own dependencies).
PREFETCH = (EVAL_DEMO, JA_INFER, JA_EXPORT, JA_EVAL)


@pytest.fixture(scope="module")
def runner(tmp_path_factory, request):
    r = Runner(build_sandbox(tmp_path_factory.mktemp("docs") / "sandbox"))
    selected = {
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_doc_page_commands"
    }
    wanted = {c.key for c in COMMANDS if c.path in selected}
    for key in PREFETCH:
        if _norm(key) in wanted:  # only chains that a selected page needs
            r.prefetch(key)
    yield r
    r.close()
    slow = sorted(r.seconds.items(), key=lambda kv: -kv[1])
    print("\ndoc commands run (seconds):\n" + "\n".join(f"{t:6.1f}  {k[:110]}" for k, t in slow))


def _check(command: DocCommand, runner: Runner) -> str:
    """'' when the command passed, else the reason."""
    spec = NORM_SPECS[command.key]
    if isinstance(spec, Run):
        runner.run(command.key)
        return ""
    if isinstance(spec, MakeDryRun):
        target = command.key.split()[1]
        proc = run_bash(f"make -n {target}", REPO_ROOT, dict(os.environ), 60)
        assert proc.returncode == 0 and spec.expect in proc.stdout, proc.stdout + proc.stderr
        return ""
    # Parse and Covered: the arguments must still be what the tool accepts.
    if command.text.startswith(("python train.py", "srun")):
        if isinstance(spec, Covered) and " -m " in command.text:
            return ""  # multirun launcher composition: the covering test composes it with the plugin
        return compose_train_command(command.text, runner.sandbox, sandbox_env(runner.sandbox))
    if command.text.startswith("python ") and not command.text.startswith("python -m pytest"):
        with runner._lock:  # in-process: sys.argv and stdout are shared with the worker threads
            return parse_python_command(command.text)
    if command.text.startswith("hf "):
        proc = run_bash(" ".join(command.text.split()[:2]) + " --help", runner.sandbox, sandbox_env(runner.sandbox), 60)
        return "" if proc.returncode == 0 else proc.stdout + proc.stderr
    first = command.text.split()[0]
    if "/" in first and not (REPO_ROOT / first).is_file():
        return f"{first} does not exist"
    return ""  # shell plumbing (cluster scripts, export lines): the covering test is the check


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_doc_page_commands(page: Path, runner: Runner):
    failures = []
    for command in [c for c in COMMANDS if c.path == page]:
        if command.key not in NORM_SPECS:
            failures.append(f"{command.where}: no spec")
            continue
        result = _check(command, runner)
        if result:
            failures.append(f"{command.where}: {command.key}\n{result}")
    assert not failures, "\n\n".join(failures)


def test_tutorial_on_three_songs_validates_evaluates_and_warns(runner: Runner):
    """The Japanese LoRA tutorial, run end to end on the sandbox's three songs: the recovered codebook reports on
    the songs, preprocessing holds one song out for validation, training keeps the release's sketch tables and warns
    that gradient accumulation is capped (with the effective batch), and the evaluation writes a report with
    metrics for both models."""
    import json

    runner.run(JA_RECOVER)
    recovery = json.loads((runner.sandbox / "work" / "recover_150s" / "report.json").read_text())
    assert recovery["songs"]["count"] == 3 and recovery["codebooks"]["recovered"]["tables_match"] is True
    shards_output = runner.run(JA_SHARDS)
    assert "1 of 3 songs held out" in shards_output, shards_output[-3000:]
    index = json.loads((runner.sandbox / "data" / "ja" / "shards" / "index.json").read_text())
    songs = {split: d["num_songs"] for split, d in index["splits"].items()}
    assert songs == {"train": 2, "val": 1}, index["splits"]
    train_output = runner.run(JA_TRAIN)
    assert "gradient accumulation is capped" in train_output and "effective batch" in train_output, (
        train_output[-3000:]
    )
    # The codebook was recovered from the release stand-in itself: its sketch tables are kept, not retrained.
    assert "sketch tables: frozen (codebook recovered from these base weights" in train_output, train_output[-3000:]
    # stated once: the memory plan's meta-device build logs its (predicted) layout at DEBUG only
    assert train_output.count("sketch tables: ") == 1, train_output[-3000:]
    assert train_output.count("trained in full besides the adapters") == 1, train_output[-3000:]
    runner.run(JA_EVAL)
    report = json.loads((runner.sandbox / "reports" / "ja-lora" / "report.json").read_text())
    assert report["meta"]["held_out_batches"] >= 1, report["meta"]
    for model in ("base", "finetuned"):
        assert report["models"][model]["metrics"], (model, report["models"][model])
    assert (runner.sandbox / "reports" / "ja-lora" / "report.md").read_text().strip()
