import { Route, Routes, useParams } from 'react-router';
import { RequireAdmin } from '../../auth/guards';
import { NotFoundPage } from '../NotFoundPage';
import AdminCategoriesPage from './AdminCategoriesPage';
import AdminIntegrationsPage from './AdminIntegrationsPage';
import AdminTagsPage from './AdminTagsPage';
import AdminTemplatesPage from './AdminTemplatesPage';
import AdminWebhooksPage from './AdminWebhooksPage';
import NotificationsPage from './NotificationsPage';
import DashboardPage from './DashboardPage';
import FollowUpsPage from './FollowUpsPage';
import PostmortemPage from './PostmortemPage';
import IncidentDetailPage, { IncidentNotFound } from './IncidentDetailPage';
import IncidentListPage from './IncidentListPage';

const NUMBER = /^[1-9][0-9]{0,15}$/;

function IncidentDetailRoute({ postmortem = false }: { postmortem?: boolean }) {
  const { number = '' } = useParams();
  // INC-12 is a fine address too.
  const digits = number.replace(/^INC-/i, '');
  if (!NUMBER.test(digits)) return <IncidentNotFound />;
  // Keyed, so another incident starts from a clean slate.
  if (postmortem) return <PostmortemPage key={digits} number={Number(digits)} />;
  return <IncidentDetailPage key={digits} number={Number(digits)} />;
}

/** The Incidents module, under /incidents: list, detail, and the admin pages. One lazy chunk. */
export default function IncidentsPage() {
  return (
    <Routes>
      <Route index element={<IncidentListPage />} />
      <Route path="admin/categories" element={<RequireAdmin><AdminCategoriesPage /></RequireAdmin>} />
      <Route path="admin/tags" element={<RequireAdmin><AdminTagsPage /></RequireAdmin>} />
      <Route path="admin/templates" element={<RequireAdmin><AdminTemplatesPage /></RequireAdmin>} />
      <Route path="admin/webhooks" element={<RequireAdmin><AdminWebhooksPage /></RequireAdmin>} />
      <Route path="notifications" element={<NotificationsPage />} />
      <Route path="admin/integrations" element={<RequireAdmin><AdminIntegrationsPage /></RequireAdmin>} />
      <Route path="dashboard" element={<DashboardPage />} />
      <Route path="follow-ups" element={<FollowUpsPage />} />
      <Route path=":number" element={<IncidentDetailRoute />} />
      <Route path=":number/postmortem" element={<IncidentDetailRoute postmortem />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
