//! lipcast-look: how the avatar looks, measured on rendered frames.
//!
//!   lipcast-look measure [--dir ../shared/portraits]   lip figures per portrait (committed ones, plus a folder)
//!   lipcast-look sheets                                 contact sheets into docs/look/
//!   lipcast-look interior                               remake models/builtin/mouth_interior.png

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lipcast_tools::{eval, frames, interior, portraits, sheet};

/// How the avatar looks, measured on rendered frames (the held-out voice through the real front end and
/// renderer, the face mesh tracking every frame).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the lip figures of the committed test portraits and of every portrait in --dir.
    Measure {
        /// A folder of extra portraits (JPEG/PNG), e.g. ../shared/portraits.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Long side of the output, pixels (0: the pack's, as the server renders).
        #[arg(long, default_value_t = 0)]
        max_long_side: u32,
        /// Also print every frame of the first clip (parameters, tracked gap, loudness).
        #[arg(long)]
        verbose: bool,
        /// Also measure each portrait as a small upload: scaled down to this long side, pixels (e.g. 200).
        #[arg(long)]
        small: Option<u32>,
        /// Measure only the portraits of these names (e.g. `--only default --only armstrong`).
        #[arg(long)]
        only: Vec<String>,
    },
    /// Write contact sheets of speech frames to docs/look/<portrait>.png.
    Sheets {
        /// A folder of extra portraits to include (their sheets go to --out too).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "docs/look")]
        out: PathBuf,
        /// Side of one tile, pixels.
        #[arg(long, default_value_t = 128)]
        tile: u32,
        /// Crop around the face, in face heights (smaller: closer to the mouth).
        #[arg(long, default_value_t = 1.3)]
        scale: f32,
    },
    /// Remake models/builtin/mouth_interior.png from the default portrait.
    Interior,
    /// Render one still of a portrait with given mouth parameters (a crop around the mouth, enlarged).
    Still {
        /// Portrait file.
        portrait: PathBuf,
        /// jaw_open, width, round, closure.
        #[arg(long, num_args = 4, allow_negative_numbers = true, default_values_t = [0.8, 0.0, 0.0, 0.0])]
        params: Vec<f32>,
        /// Output PNG.
        #[arg(long, default_value = "still.png")]
        out: PathBuf,
        /// Crop around the mouth, face heights (0 = whole frame).
        #[arg(long, default_value_t = 0.45)]
        scale: f32,
        /// Mark where the face mesh reads the inner lips on the rendered frame (green: upper, blue: lower; the
        /// middle points 13 and 14 brighter), to see what the tracker's gap is measured between.
        #[arg(long)]
        marks: bool,
    },
}

/// Paints the mesh's inner-lip points onto `img`: upper lip green, lower lip blue, 13 and 14 brighter.
fn mark_inner_lips(img: &mut image::RgbImage, points: &[[f32; 3]]) {
    use lipcast_worker::avatar::landmarks as lm;
    let mut dot = |i: usize, c: [u8; 3]| {
        let (x, y) = (points[i][0].round(), points[i][1].round());
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    };
    for &i in &lm::INNER_UPPER {
        dot(i, [0, 160, 0]);
    }
    for &i in &lm::INNER_LOWER {
        dot(i, [0, 0, 200]);
    }
    dot(lm::UPPER_LIP_INNER, [0, 255, 0]);
    dot(lm::LOWER_LIP_INNER, [0, 120, 255]);
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let clips = eval::load_heldout(&portraits::models_dir().join("eval/mouth-heldout"))?;
    match cli.command {
        Command::Measure {
            dir,
            max_long_side,
            verbose,
            only,
            small,
        } => {
            let (runtime, pack, mut models) = lipcast_tools::load_models()?;
            let max_long_side = match max_long_side {
                0 => pack.manifest.output.max_long_side,
                n => n,
            };
            let mut all = portraits::committed(&mut models)?;
            if let Some(dir) = &dir {
                all.extend(portraits::in_folder(dir)?);
            }
            if let Some(side) = small {
                let smaller = all
                    .iter()
                    .map(|p| portraits::downscaled(p, side))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                all.extend(smaller);
            }
            if !only.is_empty() {
                all.retain(|p| only.contains(&p.name));
            }
            for portrait in &all {
                let prepared = match portraits::prepare(&mut models, portrait, max_long_side) {
                    Ok(p) => p,
                    Err(e) => {
                        println!("{:<18} refused: {e:#}", portrait.name);
                        continue;
                    }
                };
                let tracked = frames::render_and_track(
                    &runtime,
                    &pack,
                    &mut models,
                    &prepared,
                    &clips,
                    &mut |_, _, _| {},
                )?;
                if verbose && let Some(c) = tracked.first() {
                    for (k, (p, g)) in c.params.iter().zip(&c.gap).enumerate() {
                        let env = c.envelope.get(k).copied().unwrap_or(f32::NAN);
                        println!(
                            "  {k:3} jaw {:.2} clo {:.2} open {:.2} | gap {:.3} | env {env:.1} dB",
                            p.jaw_open,
                            p.closure,
                            p.opening(),
                            g
                        );
                    }
                }
                let f = frames::figures(&tracked, prepared.rig.interocular);
                let from_params =
                    frames::ceiling(&tracked, |c| c.params.iter().map(|p| p.opening()).collect());
                let from_phones = frames::ceiling(&tracked, |c| {
                    clips
                        .iter()
                        .find(|k| k.name == c.name)
                        .map(|k| k.targets.iter().map(|p| p.opening()).collect())
                        .unwrap_or_default()
                });
                println!(
                    "  loudness r of the front end's opening {from_params:.2}, of the phone targets' {from_phones:.2}"
                );
                let verdict = match f.failures() {
                    v if v.is_empty() => "meets the targets".to_string(),
                    v => format!("MISSES: {}", v.join("; ")),
                };
                let own = lipcast_worker::avatar::Renderer::new(&prepared, Default::default())
                    .shows_own_teeth();
                println!(
                    "{:<18} {}x{} ({} teeth): {f}; {verdict}",
                    portrait.name,
                    prepared.width(),
                    prepared.height(),
                    if own { "own" } else { "photographed" }
                );
            }
        }
        Command::Sheets {
            dir,
            out,
            tile,
            scale,
        } => {
            let (runtime, pack, mut models) = lipcast_tools::load_models()?;
            let mut all = portraits::committed(&mut models)?;
            if let Some(dir) = &dir {
                all.extend(portraits::in_folder(dir)?);
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            // Clip 2 ("Ruth bought a blue balloon and a bamboo broom"): rounded vowels and bilabials. Every
            // third frame from 0.4 s, 16 tiles.
            let chosen: Vec<usize> = (0..16).map(|i| 10 + 3 * i).collect();
            for portrait in &all {
                let prepared =
                    portraits::prepare(&mut models, portrait, pack.manifest.output.max_long_side)?;
                let mut kept = Vec::new();
                frames::render_and_track(
                    &runtime,
                    &pack,
                    &mut models,
                    &prepared,
                    &clips[2..3],
                    &mut |_, k, f| {
                        if chosen.contains(&k) {
                            kept.push(f.clone());
                        }
                    },
                )?;
                let path = out.join(format!("{}.png", portrait.name));
                sheet::contact_sheet(&prepared, &kept, 8, tile, scale)
                    .save(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
        }
        Command::Still {
            portrait,
            params,
            out,
            scale,
            marks,
        } => {
            let (_, pack, mut models) = lipcast_tools::load_models()?;
            let bytes = std::fs::read(&portrait)
                .with_context(|| format!("reading {}", portrait.display()))?;
            let p = portraits::prepare(
                &mut models,
                &portraits::Portrait {
                    name: "still".into(),
                    bytes,
                },
                pack.manifest.output.max_long_side,
            )?;
            let mut r = lipcast_worker::avatar::Renderer::new(
                &p,
                lipcast_worker::avatar::render::RenderOptions {
                    idle_motion: false,
                    ..Default::default()
                },
            );
            let mp = lipcast_worker::audio::MouthParams {
                jaw_open: params[0],
                width: params[1],
                round: params[2],
                closure: params[3],
            };
            let mut frame = r.render(&mp, 0).to_rgb_image();
            let points = frames::Tracker::new(&p).track(&mut models, &frame)?;
            if marks {
                mark_inner_lips(&mut frame, &points);
            }
            let (gap, iod) = frames::gap_of(&points);
            println!(
                "inner-lip gap as the face mesh reads it: {gap:.3} IOD ({:.1} px; IOD {iod:.0} px, face height {:.0} px)",
                gap * iod,
                p.rig.face_height
            );
            let m = &p.rig.mouth;
            println!(
                "mouth at rest: half-width {:.1} px, upper lip {:.1} px, lower lip {:.1} px, gap in the middle {:.1} px, corners raised {:.1} px",
                m.half_width,
                m.upper_lip,
                m.lower_lip,
                m.rest_gap(0.0),
                m.corner_lift()
            );
            let img = if scale > 0.0 {
                let crop = portraits::face_square(&frame, &p, scale);
                let side = crop.width() * (512 / crop.width().max(1)).max(1);
                image::imageops::resize(&crop, side, side, image::imageops::FilterType::Nearest)
            } else {
                frame
            };
            img.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{}", out.display());
        }
        Command::Interior => {
            let (_, _, mut models) = lipcast_tools::load_models()?;
            let default = portraits::committed(&mut models)?
                .into_iter()
                .next()
                .context("no default portrait")?;
            let prepared = portraits::prepare(&mut models, &default, 512)?;
            let (texture, skin) = interior::make(&prepared);
            let path = portraits::models_dir().join("builtin/mouth_interior.png");
            texture
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "{}; reference skin colour [{:.0}, {:.0}, {:.0}] (avatar::interior::REFERENCE_SKIN)",
                path.display(),
                skin[0],
                skin[1],
                skin[2]
            );
        }
    }
    Ok(())
}
