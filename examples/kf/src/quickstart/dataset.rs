//! The quickstart's data: iris-like rows, generated from a seed and split
//! into train, validation and test rows, and its one CSV form — the
//! pipeline's `Dataset` artifact — which every later step reads back.

use std::path::Path;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Class names, in label order.
pub const CLASSES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// One labelled example: four features and the class.
pub type Row = ([f32; 4], i64);

const HEADER: &str = "split,sepal_length,sepal_width,petal_length,petal_width,class";

/// The three splits.
#[derive(Debug, Default, PartialEq)]
pub struct Dataset {
    /// What the model trains on.
    pub train: Vec<Row>,
    /// What tuning scores trials on.
    pub val: Vec<Row>,
    /// Held-out rows no model sees: evaluation and live predictions.
    pub test: Vec<Row>,
}

impl Dataset {
    /// Iris-like data: three classes of four Gaussian features around the
    /// iris species' means, 50 train, 15 validation and 20 test rows per
    /// class, shuffled; the same `seed` gives the same rows.
    pub fn iris_like(seed: u64) -> Self {
        const MEANS: [[f32; 4]; 3] = [[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]];
        const SPREAD: [f32; 4] = [0.35, 0.33, 0.45, 0.22];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |n: usize| {
            let mut rows = Vec::new();
            for (class, mean) in MEANS.iter().enumerate() {
                for _ in 0..n {
                    let mut x = [0.0f32; 4];
                    for (j, v) in x.iter_mut().enumerate() {
                        // Normal::new fails only for a negative or NaN spread; these are constants.
                        let normal = Normal::new(mean[j], SPREAD[j]).unwrap_or_else(|_| unreachable!());
                        *v = normal.sample(&mut rng).max(0.05);
                    }
                    rows.push((x, class as i64));
                }
            }
            for i in (1..rows.len()).rev() {
                rows.swap(i, rng.random_range(0..=i));
            }
            rows
        };
        let train = draw(50);
        let val = draw(15);
        let test = draw(20);
        Dataset { train, val, test }
    }

    /// The CSV form: a `split` column, the four features, the class.
    pub fn to_csv(&self) -> String {
        let mut csv = format!("{HEADER}\n");
        for (split, rows) in [("train", &self.train), ("val", &self.val), ("test", &self.test)] {
            for (x, class) in rows {
                csv.push_str(&format!("{split},{:.3},{:.3},{:.3},{:.3},{class}\n", x[0], x[1], x[2], x[3]));
            }
        }
        csv
    }

    /// Reads [`Dataset::to_csv`]'s form back; errors name the line.
    pub fn from_csv(text: &str) -> anyhow::Result<Self> {
        let mut lines = text.lines().enumerate();
        anyhow::ensure!(lines.next().map(|(_, l)| l) == Some(HEADER), "the dataset does not start with {HEADER:?}");
        let mut dataset = Dataset::default();
        for (i, line) in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let [split, a, b, c, d, class] = fields[..] else {
                anyhow::bail!("dataset line {}: expected 6 fields, found {}", i + 1, fields.len());
            };
            let number = |f: &str| f.parse::<f32>().map_err(|e| anyhow::anyhow!("dataset line {}: {f:?}: {e}", i + 1));
            let x = [number(a)?, number(b)?, number(c)?, number(d)?];
            let class = class.parse().map_err(|e| anyhow::anyhow!("dataset line {}: class {class:?}: {e}", i + 1))?;
            match split {
                "train" => dataset.train.push((x, class)),
                "val" => dataset.val.push((x, class)),
                "test" => dataset.test.push((x, class)),
                other => anyhow::bail!("dataset line {}: unknown split {other:?}", i + 1),
            }
        }
        Ok(dataset)
    }

    /// Writes `train.csv` and `val.csv` — what `train.py` reads — into `dir`.
    pub fn write_for_trainer(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        for (name, rows) in [("train.csv", &self.train), ("val.csv", &self.val)] {
            let mut csv = String::from("sepal_length,sepal_width,petal_length,petal_width,class\n");
            for (x, class) in rows {
                csv.push_str(&format!("{:.3},{:.3},{:.3},{:.3},{class}\n", x[0], x[1], x[2], x[3]));
            }
            let path = dir.join(name);
            std::fs::write(&path, csv).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}
