import { Route, Routes, useParams } from 'react-router';
import { RequireAdmin } from '../../auth/guards';
import { NotFoundPage } from '../NotFoundPage';
import AdminCategoriesPage from './AdminCategoriesPage';
import AdminIntegrationsPage from './AdminIntegrationsPage';
import AdminTagsPage from './AdminTagsPage';
import IncidentDetailPage, { IncidentNotFound } from './IncidentDetailPage';
import IncidentListPage from './IncidentListPage';

const NUMBER = /^[1-9][0-9]{0,15}$/;

function IncidentDetailRoute() {
  const { number = '' } = useParams();
  // INC-12 is a fine address too.
  const digits = number.replace(/^INC-/i, '');
  if (!NUMBER.test(digits)) return <IncidentNotFound />;
  // Keyed, so another incident starts from a clean slate.
  return <IncidentDetailPage key={digits} number={Number(digits)} />;
}

/** The Incidents module, under /incidents: list, detail, and the admin pages. One lazy chunk. */
export default function IncidentsPage() {
  return (
    <Routes>
      <Route index element={<IncidentListPage />} />
      <Route path="admin/categories" element={<RequireAdmin><AdminCategoriesPage /></RequireAdmin>} />
      <Route path="admin/tags" element={<RequireAdmin><AdminTagsPage /></RequireAdmin>} />
      <Route path="admin/integrations" element={<RequireAdmin><AdminIntegrationsPage /></RequireAdmin>} />
      <Route path=":number" element={<IncidentDetailRoute />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
