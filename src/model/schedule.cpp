#include "model/schedule.h"

#include <algorithm>
#include <cmath>

namespace sx::model {

double Triangular2::operator()(double step) const {
  const double s = step;
  const double cycle = std::floor(1.0 + s / (2.0 * step_size));
  const double x = std::abs(s / step_size - 2.0 * cycle + 1.0);
  return initial_lr +
         (maximal_lr - initial_lr) * std::max(0.0, 1.0 - x) / std::pow(2.0, cycle - 1.0);
}

}  // namespace sx::model
