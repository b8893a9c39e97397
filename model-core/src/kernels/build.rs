//! From a Burn model to the kernels' plan: each encoder's layers as [`Node`]s, weights copied
//! out (batch norms folded) into the layouts the kernels read.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use super::ops::{Act, Conv, Dense, Pad};
use crate::CoreError;
use crate::model::ImageEncoder;
use crate::model::layers::fold;
use crate::model::resnet::ResBlock;

/// One step of an encoder.
#[derive(Debug, Clone)]
pub enum Node {
    Conv(Conv, Act),
    MaxPool {
        k: usize,
        stride: usize,
        pad: Pad,
    },
    SqueezeExcite {
        fc1: Dense,
        fc2: Dense,
    },
    /// `act(body(x) + shortcut(x))` (no shortcut: `x` itself). The body's last node is a
    /// convolution without activation, which adds the shortcut in its epilogue.
    Residual {
        body: Vec<Node>,
        shortcut: Option<Conv>,
        act: Act,
    },
}

fn unsupported(what: impl std::fmt::Display) -> CoreError {
    CoreError::Backend(format!("the CPU kernels do not run {what}"))
}

pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, CoreError> {
    t.try_to_vec_as::<f32>().map_err(|e| CoreError::Backend(format!("{e:?}")))
}

fn pad(p: &PaddingConfig2d) -> Result<Pad, CoreError> {
    Ok(match p {
        PaddingConfig2d::Same => Pad::Same,
        PaddingConfig2d::Valid => Pad::Fixed { top: 0, left: 0, bottom: 0, right: 0 },
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            Pad::Fixed { top: *top, left: *left, bottom: *bottom, right: *right }
        }
        #[allow(unreachable_patterns)]
        other => return Err(unsupported(format_args!("padding {other:?}"))),
    })
}

/// A convolution and the norm after it, folded, in the kernels' layout.
pub fn conv(c: &Conv2d, bn: Option<&BatchNorm>) -> Result<Conv, CoreError> {
    let c = match bn {
        Some(bn) => fold(c.clone(), bn.clone()).0,
        None => c.clone(),
    };
    let [cout, cin_g, k, k2] = c.weight.shape().dims();
    if k != k2 || c.stride[0] != c.stride[1] || c.dilation != [1, 1] {
        return Err(unsupported("non-square, dilated or unevenly strided convolutions"));
    }
    let groups = c.groups;
    let cin = cin_g * groups;
    let depthwise = groups > 1;
    if depthwise && (groups != cout || cin_g != 1) {
        return Err(unsupported(format_args!("grouped convolutions ({groups} groups)")));
    }
    let w = values(c.weight.val())?;
    let mut weight = vec![0.0; w.len()];
    for co in 0..cout {
        for ci in 0..cin_g {
            for ky in 0..k {
                for kx in 0..k {
                    let from = ((co * cin_g + ci) * k + ky) * k + kx;
                    let to = if depthwise {
                        (ky * k + kx) * cout + co
                    } else {
                        ((ky * k + kx) * cin + ci) * cout + co
                    };
                    weight[to] = w[from];
                }
            }
        }
    }
    let bias = match &c.bias {
        Some(b) => values(b.val())?,
        None => vec![0.0; cout],
    };
    Ok(Conv::new((cin, cout, k), c.stride[0], pad(&c.padding)?, depthwise, weight, bias))
}

/// A linear layer, optionally followed by an inference-mode batch norm folded into it.
pub fn dense(l: &Linear, bn: Option<&BatchNorm>) -> Result<Dense, CoreError> {
    let [input, output] = l.weight.shape().dims();
    let mut weight = values(l.weight.val())?;
    let mut bias = match &l.bias {
        Some(b) => values(b.val())?,
        None => vec![0.0; output],
    };
    if let Some(bn) = bn {
        let (g, b) = (values(bn.gamma.val())?, values(bn.beta.val())?);
        let (mean, var) = (values(bn.running_mean.value())?, values(bn.running_var.value())?);
        for j in 0..output {
            let scale = g[j] / (var[j] + bn.epsilon as f32).sqrt();
            for i in 0..input {
                weight[i * output + j] *= scale;
            }
            bias[j] = (bias[j] - mean[j]) * scale + b[j];
        }
    }
    Ok(Dense { input, output, weight, bias })
}

fn max_pool(p: &MaxPool2d) -> Result<Node, CoreError> {
    let [k, k2] = p.kernel_size;
    if k != k2 || p.stride[0] != p.stride[1] || p.dilation != [1, 1] || p.ceil_mode {
        return Err(unsupported("this max pooling"));
    }
    Ok(Node::MaxPool { k, stride: p.stride[0], pad: pad(&p.padding)? })
}

/// The encoder's layers, first to last (the global average pooling follows them).
pub fn encoder(e: &ImageEncoder) -> Result<Vec<Node>, CoreError> {
    let mut nodes = Vec::new();
    match e {
        ImageEncoder::EfficientNetLite0(m) => {
            nodes.push(Node::Conv(conv(&m.conv_stem, Some(&m.bn0))?, Act::Relu6));
            for b in &m.blocks {
                let mut body = Vec::new();
                if let (Some(c), Some(bn)) = (&b.expand_conv, &b.bn0) {
                    body.push(Node::Conv(conv(c, Some(bn))?, Act::Relu6));
                }
                body.push(Node::Conv(conv(&b.depthwise_conv, Some(&b.bn1))?, Act::Relu6));
                body.push(Node::Conv(conv(&b.project_conv, Some(&b.bn2))?, Act::None));
                push_block(&mut nodes, body, b.residual, None, Act::None)?;
            }
            nodes.push(Node::Conv(conv(&m.conv_head, Some(&m.bn1))?, Act::Relu6));
        }
        ImageEncoder::MobileNetV3Small(m) => {
            nodes.push(Node::Conv(conv(&m.stem.conv, Some(&m.stem.bn))?, Act::HardSwish));
            for b in &m.blocks {
                let act = if b.hard_swish { Act::HardSwish } else { Act::Relu };
                let mut body = Vec::new();
                if let Some(e) = &b.expand {
                    body.push(Node::Conv(conv(&e.conv, Some(&e.bn))?, act));
                }
                body.push(Node::Conv(conv(&b.depthwise.conv, Some(&b.depthwise.bn))?, act));
                if let Some(se) = &b.se {
                    body.push(Node::SqueezeExcite {
                        fc1: dense(&se.fc1, None)?,
                        fc2: dense(&se.fc2, None)?,
                    });
                }
                body.push(Node::Conv(conv(&b.project.conv, Some(&b.project.bn))?, Act::None));
                push_block(&mut nodes, body, b.residual, None, Act::None)?;
            }
            nodes.push(Node::Conv(conv(&m.last.conv, Some(&m.last.bn))?, Act::HardSwish));
        }
        ImageEncoder::ResNet(m) => {
            nodes.push(Node::Conv(conv(&m.conv1, Some(&m.bn1))?, Act::Relu));
            nodes.push(max_pool(&m.maxpool)?);
            for layer in &m.layers {
                for b in &layer.blocks {
                    let (body, ds) = match b {
                        ResBlock::Basic(b) => (
                            vec![
                                Node::Conv(conv(&b.conv1, Some(&b.bn1))?, Act::Relu),
                                Node::Conv(conv(&b.conv2, Some(&b.bn2))?, Act::None),
                            ],
                            &b.downsample,
                        ),
                        ResBlock::Bottleneck(b) => (
                            vec![
                                Node::Conv(conv(&b.conv1, Some(&b.bn1))?, Act::Relu),
                                Node::Conv(conv(&b.conv2, Some(&b.bn2))?, Act::Relu),
                                Node::Conv(conv(&b.conv3, Some(&b.bn3))?, Act::None),
                            ],
                            &b.downsample,
                        ),
                    };
                    let shortcut = ds.as_ref().map(|d| conv(&d.conv, Some(&d.bn))).transpose()?;
                    push_block(&mut nodes, body, true, shortcut, Act::Relu)?;
                }
            }
        }
        ImageEncoder::CustomCnn(m) => {
            for st in &m.stages {
                nodes.push(Node::Conv(conv(&st.conv, Some(&st.bn))?, Act::Relu));
                nodes.push(max_pool(&m.pool)?);
            }
            nodes.push(Node::Conv(conv(&m.proj, Some(&m.proj_bn))?, Act::Relu));
        }
    }
    Ok(nodes)
}

/// A block's nodes, inside a residual when it has one (its last layer must be a dense
/// convolution without activation: the shortcut is added in that one's epilogue).
fn push_block(
    nodes: &mut Vec<Node>,
    body: Vec<Node>,
    residual: bool,
    shortcut: Option<Conv>,
    act: Act,
) -> Result<(), CoreError> {
    if !residual {
        nodes.extend(body);
        return Ok(());
    }
    match body.last() {
        Some(Node::Conv(c, Act::None)) if !c.depthwise => {
            nodes.push(Node::Residual { body, shortcut, act });
            Ok(())
        }
        _ => Err(unsupported("a residual block that does not end in a plain convolution")),
    }
}
